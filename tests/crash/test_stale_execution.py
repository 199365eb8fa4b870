"""A worker that was presumed dead but still runs (frozen with SIGSTOP past its lease, then
resumed) races the executor that adopted its workflow through a @transaction step: the effect
happens once and the workflow ends SUCCESS with the outcome that committed first."""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.crash.harness import app_rows, create_app_table, wait_for
from tests.crash.workers import insert_gated_once, read_lines

pytestmark = [pytest.mark.crash, pytest.mark.timeout(300)]


@pytest.mark.parametrize("backend", ["postgres"])  # a frozen SQLite writer blocks every process
def test_stale_execution_commits_first_and_the_owner_still_succeeds(
    fleet, client, database_url, tmp_path
):
    create_app_table(database_url)
    log, gates = str(tmp_path / "effects.log"), tmp_path / "gates"
    gates.mkdir()
    lease = ("--lease", "3", "--heartbeat", "1")
    args = json.dumps([log, "row-1", str(gates)])
    stale = fleet.spawn(
        "exec-a", "--start", insert_gated_once.__name__, "--workflow-id", "wf-stale",
        "--args", args, *lease,
    )  # fmt: skip
    wait_for(lambda: read_lines(log).count("inserted row-1") == 1, 60, "exec-a's transaction")
    os.kill(stale.pid, signal.SIGSTOP)  # no heartbeats: exec-a looks dead, but is not
    try:
        fleet.spawn("exec-b", *lease)
        c = client()
        wait_for(
            lambda: c.retrieve_workflow("wf-stale").status().executor_id == "exec-b",
            60,
            "exec-b to adopt the workflow",
        )
        wait_for(lambda: read_lines(log).count("inserted row-1") == 2, 60, "exec-b's transaction")
    finally:
        os.kill(stale.pid, signal.SIGCONT)
    (gates / "release-1").touch()  # the stale execution commits its transaction first
    wait_for(lambda: app_rows(database_url) == ["row-1"], 60, "exec-a's commit")
    (gates / "release-2").touch()  # the owner's transaction now conflicts and rolls back

    assert c.retrieve_workflow("wf-stale").result(timeout=60) == "row-1 by attempt 1"
    assert app_rows(database_url) == ["row-1"]
    steps = c.list_steps("wf-stale")
    assert [(s.step_id, s.result) for s in steps] == [(1, "row-1 by attempt 1")]
