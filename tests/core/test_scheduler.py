"""@scheduled: one run per tick across engines; invalid cron expressions fail at import."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from durable_core import Engine, scheduled, workflow
from durable_core.errors import ConfigurationError


def test_each_tick_runs_once_across_engines(engine, database_url):
    # Declared here and unscheduled afterwards, so that no other test's engine ticks it.
    @scheduled("* * * * * *")  # every second (the sixth field is seconds)
    @workflow
    def every_second(scheduled_at: dt.datetime, started_at: dt.datetime) -> str:
        return scheduled_at.isoformat()

    defn = every_second.__durable_workflow__
    try:
        with (
            Engine(database_url, executor_id="scheduler-1"),
            Engine(database_url, executor_id="scheduler-2"),
        ):
            time.sleep(2.5)
    finally:
        defn.schedule = None
    runs = engine.list_workflows(name=defn.name, limit=None)
    ticks = [r.args[0] for r in runs]
    assert len(ticks) >= 2
    assert len(ticks) == len(set(ticks))  # two engines, still one run per tick
    for run in runs:
        assert run.workflow_id.startswith("sched:")
        assert run.args[0].tzinfo is not None


def test_invalid_cron_fails_at_import():
    with pytest.raises(ConfigurationError, match="invalid cron.*bad_schedule"):

        @scheduled("every tuesday")
        @workflow
        def bad_schedule(a, b) -> None: ...

    with pytest.raises(ConfigurationError, match="above @workflow"):

        @scheduled("* * * * *")
        def not_a_workflow(a, b) -> None: ...
