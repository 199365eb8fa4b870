"""Cron schedules: each ``@scheduled`` workflow starts once per tick across all workers.

The tick's workflow ID is derived from the workflow name and the tick time, so every worker
may try to start it and exactly one run exists. After downtime only the most recent missed
tick runs (if the schedule had run before), not every tick that was missed.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from .registry import REGISTRY, WorkflowDef
from .runtime import Runtime

log = logging.getLogger("durable_core.scheduler")


def tick_workflow_id(defn: WorkflowDef, tick: dt.datetime) -> str:
    return f"sched:{defn.name}:{tick.strftime('%Y-%m-%dT%H:%M:%S')}Z"


def start_tick(engine: Runtime, defn: WorkflowDef, tick: dt.datetime) -> None:
    """Start the run of ``defn`` for cron tick ``tick`` (once, whoever calls it)."""
    started = dt.datetime.fromtimestamp(engine.clock.time(), dt.UTC)
    engine.start_workflow(defn.name, tick, started, workflow_id=tick_workflow_id(defn, tick))


class Scheduler:
    def __init__(self, engine: Runtime) -> None:
        self.engine = engine
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for defn in REGISTRY.workflows.values():
            if defn.schedule:
                thread = threading.Thread(
                    target=self._run, args=(defn,), name=f"durable-cron-{defn.name}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)

    def _now(self) -> dt.datetime:
        """Ticks fire on the fleet's clock, so a skewed host fires with the others."""
        return dt.datetime.fromtimestamp(self.engine.clock.time(), dt.UTC)

    def _start_tick(self, defn: WorkflowDef, tick: dt.datetime) -> None:
        start_tick(self.engine, defn, tick)

    def _run(self, defn: WorkflowDef) -> None:
        from croniter import croniter

        now = self._now()
        try:
            if self.engine.store.list_workflows(name=defn.name, limit=1):
                previous = croniter(defn.schedule, now).get_prev(dt.datetime)
                self._start_tick(defn, previous)
        except Exception:
            log.exception("could not start the missed tick of %s", defn.name)
        schedule = croniter(defn.schedule, now)
        while not self._stop.is_set():
            tick = schedule.get_next(dt.datetime)
            while not self._stop.is_set():
                remaining = (tick - self._now()).total_seconds()
                if remaining <= 0:
                    break
                self._stop.wait(min(remaining, 30))
            if self._stop.is_set():
                return
            try:
                self._start_tick(defn, tick)
            except Exception:
                log.exception("scheduled workflow %s failed to start for %s", defn.name, tick)
