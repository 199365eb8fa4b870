"""Exactly one run per tick across real worker processes (issue 14, schedules as data).

Three worker processes fire one stored every-second schedule. Each tick's run records its
tick in a side-effect log, so the test sees how often each tick's body ran, not only how many
rows exist (a row per tick is guaranteed by its workflow ID anyway)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.crash.harness import wait_for
from tests.crash.workers import read_lines, scheduled_tick

pytestmark = [pytest.mark.crash, pytest.mark.timeout(120)]

NAME = scheduled_tick.__durable_workflow__.name


def test_three_processes_run_each_tick_exactly_once(fleet, client, tmp_path):
    log = str(tmp_path / "ticks.log")
    workers = [fleet.spawn(f"sched-{i}", "--scheduler") for i in range(3)]
    for w in workers:
        w.wait_ready()
    c = client()
    c.create_schedule(
        "fleet-every-second",
        NAME,
        "* * * * * *",
        kwargs={"log": log},
        catchup="all",  # a pass that comes late still runs every tick: none may be missing
        overlap="allow",
    )
    wait_for(lambda: len(read_lines(log)) >= 5, 60, "five ticks to run")
    c.pause_schedule("fleet-every-second")

    def settled() -> list | None:
        found = c.list_workflows(name=NAME, limit=None)
        done = all(w.status == "SUCCESS" for w in found)
        return found if done and len(read_lines(log)) == len(found) else None

    runs = wait_for(settled, 30, "every started tick to finish")
    lines = read_lines(log)
    assert len(lines) == len(set(lines)), f"a tick ran twice:\n{fleet.outputs()}"
    ticks = sorted(dt.datetime.fromisoformat(t) for t in lines)
    assert all(b - a == dt.timedelta(seconds=1) for a, b in zip(ticks, ticks[1:], strict=False))
    assert {r.args[0] for r in runs} == set(ticks)
    assert {r.workflow_id for r in runs} == {
        f"sched:fleet-every-second:{t:%Y-%m-%dT%H:%M:%S}Z" for t in ticks
    }
    assert {r.executor_id for r in runs} <= {w.executor_id for w in workers}
