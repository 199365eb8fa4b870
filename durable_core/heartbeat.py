"""The executor lease: heartbeats on a thread of their own, and when an engine may judge others.

An executor renews its lease (a row in ``durable_executors``) every ``heartbeat_seconds``; one
whose heartbeat is older than ``lease_seconds`` is presumed dead and its PENDING work is
adopted. Two things make that presumption safe:

* the heartbeat has its own thread, so a slow or backing-off maintenance pass (a long
  deadline sweep, a locked table) never delays it, and its own connection, so steps that
  hold every pooled connection while they wait on a lock never starve it;
* an engine judges others' heartbeats only after it has itself been in contact with the
  database continuously for a full lease (after launch, and again after any failed or stalled
  contact). After an outage or a freeze every live worker's heartbeat is old; judged at once,
  live workers would adopt each other's work and run plain steps twice. Waiting a lease of
  good contact gives each of them a full lease to renew first.

The clock is recalibrated against the database at every heartbeat (see clock.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time

from . import metrics
from .runtime import Runtime

log = logging.getLogger("durable_core.heartbeat")


class Heartbeat:
    """Renews this engine's lease and tracks how long its contact with the database has been
    unbroken."""

    def __init__(self, engine: Runtime) -> None:
        self.engine = engine
        self.hostname = socket.gethostname()
        self._lock = threading.Lock()
        self._last_ok: float | None = None  # monotonic end of the last successful beat
        self._contact_since: float | None = None  # monotonic start of unbroken contact

    def _renew(self, *, single_attempt: bool = False) -> bool:
        engine = self.engine
        store = engine.store
        attempts = store.single_attempt() if single_attempt else contextlib.nullcontext()
        with store.lease_connection(), attempts:
            engine.clock.calibrate(store.database_time_ms)
            return store.heartbeat(
                engine.executor_id,
                engine.application_version,
                self.hostname,
                os.getpid(),
                int(engine.lease_seconds * 1000),
            )

    def beat(self) -> None:
        """One renewal: recalibrate the clock, write the heartbeat. Raises on failure (after
        marking contact as broken)."""
        started = time.monotonic()
        try:
            renewed = self._renew(single_attempt=True)
        except BaseException:
            self.contact_lost()
            raise
        self._contact_ok(started, time.monotonic())
        if not renewed:
            log.error(
                "executor ID %s is now held by another live process: this engine was presumed "
                "dead (its lease expired) and the ID was taken over; its work is the other "
                "process's now. Give every process its own executor ID.",
                self.engine.executor_id,
            )

    def register(self) -> None:
        """Take the lease on this engine's executor ID at launch.

        A row left by a process that is gone is taken over at once when its heartbeat is
        stale, or when it was this host's and that process ID is no longer running (a restart
        after a crash recovers its work immediately). Otherwise launch watches the row for up
        to a lease: a holder that renews it is alive, and launch raises ``ExecutorIdInUse``;
        a holder that does not is dead, and its lease expires."""
        from .errors import ExecutorIdInUse

        engine, store = self.engine, self.engine.store
        deadline = time.monotonic() + engine.lease_seconds + engine.heartbeat_seconds
        first_seen: tuple[str | None, int | None, int] | None = None
        while True:
            started = time.monotonic()
            if self._renew():
                self._contact_ok(started, time.monotonic())
                return
            holder = store.executor_holder(engine.executor_id)
            if holder is None:
                continue  # removed in between: take it
            hostname, pid, heartbeat_at = holder
            if hostname == self.hostname and pid is not None and not _pid_alive(pid):
                if store.take_executor(
                    engine.executor_id,
                    engine.application_version,
                    self.hostname,
                    os.getpid(),
                    holder,
                ):
                    self._contact_ok(started, time.monotonic())
                    return
                continue
            first_seen = first_seen or holder
            if heartbeat_at != first_seen[2] or time.monotonic() > deadline:
                age = (engine.clock.now_ms() - heartbeat_at) / 1000
                raise ExecutorIdInUse(
                    f"executor ID {engine.executor_id!r} is in use by another live process "
                    f"(host {hostname!r}, pid {pid}, heartbeat {age:.1f}s ago). Two processes "
                    "sharing an executor ID corrupt each other's work: give each its own "
                    "(Engine(executor_id=...), DURABLE_EXECUTOR_ID, DURABLE['EXECUTOR_ID']) or "
                    "stop the other process."
                )
            time.sleep(min(0.2, engine.heartbeat_seconds / 4))

    def _contact_ok(self, started: float, ended: float) -> None:
        engine = self.engine
        metrics.heartbeat_roundtrip(ended - started)
        with self._lock:
            # A beat that took longer than the heartbeat interval was held up (by retries in
            # an outage, a lock, a freeze of this process); so was a gap between beats longer
            # than two intervals. Either way the others' heartbeats may have been held up too.
            stalled = ended - started > engine.heartbeat_seconds
            gap = self._last_ok is not None and ended - self._last_ok > 2 * engine.heartbeat_seconds
            if self._contact_since is None or stalled or gap:
                self._contact_since = ended
            self._last_ok = ended

    def contact_lost(self) -> None:
        with self._lock:
            self._last_ok = None
            self._contact_since = None

    @property
    def contact_seconds(self) -> float:
        """How long this engine's contact with the database has been unbroken (0 if broken)."""
        with self._lock:
            if self._contact_since is None or self._last_ok is None:
                return 0.0
            now = time.monotonic()
            if now - self._last_ok > 2 * self.engine.heartbeat_seconds:
                return 0.0  # no recent beat: contact is not current
            return now - self._contact_since

    def may_judge_others(self) -> bool:
        """Whether others' heartbeats can be trusted to be fresh if their owners are alive."""
        return self.contact_seconds >= self.engine.lease_seconds

    def run(self, stopping: threading.Event) -> None:
        """Beat every ``heartbeat_seconds`` until ``stopping`` is set; a failed beat is logged
        and retried after a short pause (never later than the next regular beat)."""
        interval = self.engine.heartbeat_seconds
        failing_since: float | None = None
        last_warning = 0.0
        while True:
            started = time.monotonic()
            try:
                self.beat()
            except Exception as exc:
                if stopping.is_set():
                    return
                if failing_since is None or started - last_warning >= 30:
                    failing_since = failing_since or started
                    last_warning = started
                    log.warning(
                        "heartbeat of executor %s failing for %.0fs (%s: %s); retrying",
                        self.engine.executor_id,
                        started - failing_since,
                        type(exc).__name__,
                        exc,
                    )
                if stopping.wait(min(1.0, interval / 2)):
                    return
                continue
            if failing_since is not None:
                log.warning(
                    "heartbeat of executor %s restored after %.1fs",
                    self.engine.executor_id,
                    time.monotonic() - failing_since,
                )
                failing_since = None
            if stopping.wait(max(interval - (time.monotonic() - started), 0.0)):
                return


def _pid_alive(pid: int) -> bool:
    """Whether a process with this ID runs on this host (one we may not signal counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped by its parent) is not running
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
