"""Sync workflows waiting off-thread.

A sync workflow that waits longer than the engine's suspend threshold (sleep, recv, a child's
result) raises ``Suspend``; the engine parks it here, keyed by workflow ID, with a timer and
wake-up keys, and gives its thread back. When the timer fires or a key is signalled, the
workflow is replayed from its record on a pool thread. Ten thousand parked workflows are ten
thousand small dict entries and heap items, not threads.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .clock import DatabaseClock

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .registry import WorkflowDef
    from .runtime import Execution, Runtime, Suspend

log = logging.getLogger("durable_core.parking")


class ParkingLot:
    def __init__(self, engine: Runtime) -> None:
        self.engine = engine
        # The stop flag of the launch this lot belongs to: after a shutdown and a new launch,
        # a wake-up left over from before must not resume anything.
        self.stopping = engine.stopping
        self.parked: dict[str, tuple[Any, tuple[Any, ...]]] = {}
        self.lock = threading.Lock()
        self.waiting_in_thread = 0
        self.held_warm = 0
        #: A workflow with at least this many recorded entries (steps, waits) is worth keeping
        #: alive through a wait: parking it would replay all of them at its wake-up, so a loop
        #: of (step, wait) rounds would cost O(rounds) per round, O(rounds^2) in all
        #: (``Engine(hold_history=...)``).
        self.warm_history = engine.hold_history
        #: How long such a workflow keeps its execution (and a thread outside the pool) while
        #: it waits before it is parked as any other: a wake-up within it costs no replay at
        #: all (``Engine(hold_seconds=...)``; 0: never held).
        self.warm_seconds = engine.hold_seconds

    @property
    def warm_limit(self) -> int:
        """How many waits may be held warm at once (each holds a thread outside the pool)."""
        return self.engine.max_workers

    @property
    def in_thread_limit(self) -> int:
        """How many sync workflows may wait on their own thread (before the suspend
        threshold) at once: a quarter of the pool. Past it a wait parks at once, so a burst of
        waits never holds every thread while the work behind it queues."""
        return max(1, self.engine.max_workers // 4)

    @contextlib.contextmanager
    def in_thread_wait(self) -> Iterator[bool]:
        """Yields whether this wait may stay on its thread (counted while it does)."""
        with self.lock:
            allowed = self.waiting_in_thread < self.in_thread_limit
            if allowed:
                self.waiting_in_thread += 1
        try:
            yield allowed
        finally:
            if allowed:
                with self.lock:
                    self.waiting_in_thread -= 1

    def hold(
        self, ctx: Execution, keys: Sequence[Any], seen: Sequence[int], deadline: float
    ) -> bool:
        """Wait for ``keys`` keeping the execution alive, its thread taken out of the pool, as
        if parked (it counts as parked, not in flight). True when woken, cancelled or at the
        deadline: the wait goes on in its plan, with nothing replayed. False when the wait
        must park as usual: a short history (cheap to replay), no room, a test clock (virtual
        time), shutdown, or no wake-up within ``warm_seconds``."""
        engine = self.engine
        wid = ctx.workflow_id
        if (
            self.warm_seconds <= 0
            or len(ctx.recorded) < self.warm_history
            or not isinstance(engine.clock, DatabaseClock)
        ):
            return False
        woken = threading.Event()
        with self.lock:
            if self.stopping.is_set() or self.held_warm >= self.warm_limit or wid in self.parked:
                return False
            self.held_warm += 1
            self.parked[wid] = (woken.set, tuple(keys))
        detached = engine.detach_thread()
        if detached:
            engine.track_inflight(-1, wid)
        try:
            if not detached:
                return False
            all_keys = [*keys, ("w", wid)]
            all_seen = [*seen, engine.notifier.version(("w", wid))]
            until = time.monotonic() + self.warm_seconds
            while True:
                if ctx.cancel_event.is_set() or woken.is_set():
                    return True
                if self.stopping.is_set():
                    return False
                left = until - time.monotonic()
                if left <= 0:
                    return False
                to_deadline = deadline - engine.clock.time()
                if to_deadline <= 0:
                    return True
                # Slices, so that a shutdown or a cancel is seen within a quarter second.
                if engine.notifier.wait(all_keys, all_seen, min(left, to_deadline, 0.25)):
                    return True
        finally:
            with self.lock:
                self.held_warm -= 1
                if self.parked.get(wid, (None,))[0] == woken.set:
                    del self.parked[wid]
            if detached:
                engine.track_inflight(1, wid)

    def park(self, defn: WorkflowDef, workflow_id: str, suspended: Suspend) -> None:
        """Release a waiting sync workflow; replay it when its timer or wake-up key fires.
        A dequeued one has already given back its ``worker_concurrency`` slot (the engine's
        run_sync does, as the execution unwinds)."""
        engine = self.engine
        fired = threading.Event()

        def wake() -> None:
            if fired.is_set():
                return
            with self.lock:
                if fired.is_set():
                    return
                fired.set()
                self.parked.pop(workflow_id, None)
            if not self.stopping.is_set():
                self._resume(defn, workflow_id)

        with self.lock:
            # A parked workflow holds no thread and does not count as in flight: shutdown
            # does not wait for it and queue capacity is not taken by it.
            self.parked[workflow_id] = (wake, suspended.keys)
        keys = [*suspended.keys, ("w", workflow_id)]
        versions = [*suspended.versions, engine.notifier.version(("w", workflow_id))]
        if suspended.wake_at is not None and engine.timers is not None:
            engine.timers.call_at(suspended.wake_at, wake)
        engine.notifier.on_signal(keys, versions, wake)

    def _resume(self, defn: WorkflowDef, workflow_id: str) -> None:
        engine = self.engine

        def run() -> None:
            try:
                row = engine.store.get_workflow(workflow_id)
            except Exception:
                log.exception(
                    "could not reload parked workflow %s; recovery will resume it", workflow_id
                )
                row = None
            if row is None or row.status != "PENDING" or row.executor_id != engine.executor_id:
                engine.track_inflight(-1, workflow_id)
                return
            engine.run_sync(defn, row, None, None)  # its end balances the track_inflight(1) below

        engine.track_inflight(1, workflow_id)
        try:
            engine.run_in_pool(run)
        except RuntimeError:
            engine.track_inflight(-1, workflow_id)

    def poll(self) -> None:
        """Safety net for wake-ups that no signal reached (another process on SQLite)."""
        engine = self.engine
        with self.lock:
            waiting = {wid: keys for wid, (_, keys) in self.parked.items() if keys}
        if not waiting:
            return
        message_waiters = [
            ident for keys in waiting.values() for kind, ident in keys if kind == "m"
        ]
        for ident in engine.store.destinations_with_messages(message_waiters):
            engine.notifier.notify("m", ident)
        for keys in waiting.values():
            for kind, ident in keys:
                if kind in ("e", "w"):
                    engine.notifier.notify(kind, ident)
