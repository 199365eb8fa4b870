"""The scheduler: fires the stored schedules' ticks, exactly once per tick across all workers.

Every engine that runs a scheduler reads ``durable_schedules`` (at most ``refresh`` seconds
apart, and at each due tick), so a schedule created, paused, resumed or edited anywhere is
honoured fleet-wide within about a second. A due tick is fired in one transaction that moves
the schedule's ``last_tick`` by compare-and-swap and stores the tick's run under its
tick-derived workflow ID: whichever engine commits first fires it, the others find
``last_tick`` moved and do nothing, and even a stale compare cannot make a second run (the ID
exists). What is due and what runs follow the schedule's policies (``schedules.py``).

``@scheduled`` workflows are schedules too: an engine records the ones its code defines as
code-defined rows at launch (``sync_code``) and fires those rows only while its code has them.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterable

from . import cron
from .registry import REGISTRY, WorkflowDef
from .runtime import Runtime
from .schedules import (
    CODE,
    ON_TIME,
    Runner,
    code_row,
    due,
    next_tick_of,
    run_row,
    tick_workflow_id,
)
from .store import ScheduleRow, WorkflowRow

log = logging.getLogger("durable_core.scheduler")

ACTIVE = ("PENDING", "ENQUEUED")


class Scheduler:
    """Fires due ticks for one engine.

    Parameters:
        code: the ``@scheduled`` workflows this engine defines (default: every registered one).
        refresh: seconds between reads of the schedules table when no tick is due sooner.
    """

    def __init__(
        self, engine: Runtime, code: Iterable[WorkflowDef] | None = None, refresh: float = 1.0
    ) -> None:
        self.engine = engine
        if code is None:
            code = [d for d in REGISTRY.workflows.values() if d.schedule]
        self.code = {d.name: d for d in code}
        self.refresh = refresh
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._rows: list[ScheduleRow] = []
        self._next: dict[tuple[str, str, int], dt.datetime | None] = {}
        self._pass_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def sync_code(self) -> None:
        """Record this engine's ``@scheduled`` workflows as code-defined schedules."""
        now = self.engine.clock.now_ms()
        for defn in self.code.values():
            try:
                self.engine.store.sync_code_schedule(code_row(defn, now))
            except Exception:
                log.exception("could not record the schedule of %s", defn.name)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="durable-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def wake(self) -> None:
        """A schedule changed in this process: look again now rather than at the next refresh."""
        self._wake.set()

    def _run(self) -> None:
        self.sync_code()  # here, not in launch(): a launch is not held up by it
        while not self._stop.is_set():
            try:
                self.run_due()
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("scheduler pass failed; retrying at the next refresh")
            delay = self.refresh
            upcoming = self.next_due(refresh=False)
            if upcoming is not None:
                delay = min(delay, self.engine.clock.seconds_until(upcoming))
            self._wake.wait(max(delay, 0.005))
            self._wake.clear()

    # -- what is due -------------------------------------------------------------------------

    def _now(self) -> dt.datetime:
        """Ticks fire on the fleet's clock, so a skewed host fires with the others."""
        return dt.datetime.fromtimestamp(self.engine.clock.time(), dt.UTC)

    def _fires_here(self, row: ScheduleRow) -> bool:
        return not row.paused and (row.source != CODE or row.schedule_id in self.code)

    def _next_tick(self, row: ScheduleRow) -> dt.datetime | None:
        key = (
            row.cron,
            row.timezone,
            row.last_tick if row.last_tick is not None else -row.created_at,
        )
        if key not in self._next:
            if len(self._next) > 10_000:
                self._next.clear()
            self._next[key] = next_tick_of(row)
        return self._next[key]

    def next_due(self, refresh: bool = True) -> float | None:
        """When the next tick of a schedule this engine fires is due (epoch seconds on the
        engine's clock); ``refresh`` reads the table first."""
        if refresh:
            self._rows = self.engine.store.list_schedules()
        ticks = [self._next_tick(r) for r in self._rows if self._fires_here(r)]
        known = [t.timestamp() for t in ticks if t is not None]
        return min(known) if known else None

    # -- firing ------------------------------------------------------------------------------

    def run_due(self) -> int:
        """One pass: fire every due tick of every schedule this engine fires. Returns how
        many runs this engine started."""
        with self._pass_lock:
            self._rows = self.engine.store.list_schedules()
            now = self._now()
            started = 0
            for row in self._rows:
                if not self._fires_here(row):
                    continue
                upcoming = self._next_tick(row)
                if upcoming is None or upcoming > now:
                    continue
                try:
                    started += self._fire(row, now)
                except Exception:
                    log.exception("schedule %s could not fire its due tick", row.schedule_id)
            return started

    def _fire(self, row: ScheduleRow, now: dt.datetime) -> int:
        plan = due(row, now)
        if plan is None:
            return 0
        ticks = plan.fire
        if ticks and row.overlap != "allow":
            # Several due ticks at once (catch-up "all"): with "skip" the first one's run would
            # make the others skip; with "cancel" each would cancel the one before. So only the
            # first (skip) or the last (cancel) can run.
            ticks = ticks[:1] if row.overlap == "skip" else ticks[-1:]
            previous = row.last_workflow_id
            if previous is not None and previous != tick_workflow_id(row.schedule_id, ticks[0]):
                outcome = self.engine.store.get_outcome(previous)
                if outcome is not None and outcome[0] in ACTIVE:
                    if row.overlap == "skip":
                        log.info(
                            "schedule %s: tick %s skipped, run %s is still active",
                            row.schedule_id,
                            cron.tick_label(ticks[0]),
                            previous,
                        )
                        ticks = []
                    else:
                        # Before the tick is consumed: a crash here leaves the tick due.
                        self.engine.cancel_workflow(previous)
        late = [tick for tick in ticks if now - tick > ON_TIME]
        if late:
            log.info(
                "schedule %s: catching up %d missed tick(s) from %s (catch-up policy %r)",
                row.schedule_id,
                len(late),
                cron.tick_label(late[0]),
                row.catchup,
            )
        t = self.engine.clock.now_ms()
        runner = Runner(self.engine.executor_id, self.engine.application_version)
        runs = [
            run_row(
                row,
                self.engine.serializer,
                tick_workflow_id(row.schedule_id, tick),
                tick,
                t,
                runner,
            )
            for tick in ticks
        ]
        created = self.engine.store.start_schedule_runs(
            row.schedule_id,
            runs,
            consumed=(row.last_tick, plan.consume),
            last_workflow_id=runs[-1].workflow_id if runs else None,
        )
        if created is None:
            return 0  # another engine fired it (or it was paused or deleted meanwhile)
        self._submit(created)
        return len(created)

    def _submit(self, created: list[WorkflowRow]) -> None:
        for wf in created:
            if wf.status != "PENDING":
                continue
            defn = REGISTRY.get(wf.name)
            if defn is not None:
                self.engine.submit(defn, wf, [])
