"""A workflow whose process dies every time it runs is dead-lettered after
``max_recovery_attempts`` recoveries instead of crashing its workers forever."""

from __future__ import annotations

import json

import pytest

from durable_core.errors import WorkflowFailed
from tests.crash.harness import wait_for
from tests.crash.workers import crash_loop, read_lines

pytestmark = [pytest.mark.crash, pytest.mark.timeout(90)]


def test_workflow_killed_on_every_run_is_dead_lettered(fleet, client, tmp_path):
    log = str(tmp_path / "effects.log")
    args = json.dumps([log])
    options = ["--start", crash_loop.__name__, "--workflow-id", "wf-loop", "--args", args]
    for run in (1, 2, 3):  # the first run and max_recovery_attempts=2 recoveries
        worker = fleet.spawn("exec-loop", *options)
        wait_for(lambda run=run: read_lines(log).count("attempt") == run, 30, f"run {run}")
        worker.kill()
        options = []  # the restarted process only recovers
    c = client()
    assert c.retrieve_workflow("wf-loop").status().recovery_attempts == 2

    fleet.spawn("exec-loop").wait_ready()  # launch() counts a third recovery: dead-letter
    status = c.retrieve_workflow("wf-loop").status()
    assert status.status == "MAX_RECOVERY_ATTEMPTS_EXCEEDED"
    with pytest.raises(WorkflowFailed):
        c.retrieve_workflow("wf-loop").result(timeout=5)
    assert read_lines(log).count("attempt") == 3  # it did not run a fourth time
