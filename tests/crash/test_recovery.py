"""A worker SIGKILLed mid-step: completed steps do not run again, and the workflow finishes
with the right result, recovered by the same executor on restart or adopted by another one
once the dead executor's lease expires."""

from __future__ import annotations

import time

import pytest

from tests.crash.harness import wait_for
from tests.crash.workers import five_steps, read_lines

pytestmark = [pytest.mark.crash, pytest.mark.timeout(90)]

STEP = five_steps.__module__ + ".numbered"


def start_and_kill_at_step_3(fleet, client, log: str, workflow_id: str, *options: str):
    first = fleet.spawn(
        "exec-a", "--start", "five_steps", "--workflow-id", workflow_id,
        "--args", f'["{log}", 3]', *options,
    )  # fmt: skip
    wait_for(lambda: "started 3" in read_lines(log), 30, "step 3 to start")
    killed_at = first.kill()
    c = client()
    status = c.retrieve_workflow(workflow_id).status()
    assert status.status == "PENDING"
    assert status.executor_id == "exec-a"
    assert [s.step_id for s in c.list_steps(workflow_id)] == [1, 2]
    return c, killed_at


def assert_finished_once(c, log: str, workflow_id: str) -> None:
    assert c.retrieve_workflow(workflow_id).result(timeout=30) == [10, 20, 30, 40, 50]
    lines = read_lines(log)
    for n in (1, 2):  # checkpointed before the kill: never again
        assert lines.count(f"started {n}") == 1, lines
    assert lines.count("started 3") == 2, lines  # at least once: the killed attempt and one more
    assert lines.count("done 3") == 1, lines
    for n in (4, 5):
        assert lines.count(f"started {n}") == 1, lines
    steps = c.list_steps(workflow_id)
    assert [(s.step_id, s.name, s.result) for s in steps] == [
        (n, STEP, n * 10) for n in range(1, 6)
    ]
    status = c.retrieve_workflow(workflow_id).status()
    assert status.status == "SUCCESS"
    assert status.recovery_attempts == 1


def test_restart_with_same_executor_resumes_from_last_completed_step(fleet, client, tmp_path):
    log, workflow_id = str(tmp_path / "effects.log"), "wf-same"
    c, _ = start_and_kill_at_step_3(fleet, client, log, workflow_id)

    fleet.spawn("exec-a")  # same executor ID: launch() recovers its PENDING workflow at once
    assert_finished_once(c, log, workflow_id)
    assert c.retrieve_workflow(workflow_id).status().executor_id == "exec-a"


def test_other_executor_adopts_work_after_lease_expires(fleet, client, tmp_path):
    log, workflow_id = str(tmp_path / "effects.log"), "wf-adopt"
    lease = ("--lease", "3", "--heartbeat", "1")
    c, killed_at = start_and_kill_at_step_3(fleet, client, log, workflow_id, *lease)

    other = fleet.spawn("exec-b", *lease)
    other.wait_ready()
    adopted_at = wait_for(
        lambda: c.retrieve_workflow(workflow_id).status().executor_id == "exec-b" and time.time(),
        30,
        "exec-b to adopt the workflow",
    )
    assert_finished_once(c, log, workflow_id)
    adoption = adopted_at - killed_at
    print(f"adopted {adoption:.2f}s after SIGKILL (lease 3s)")
    # Not before the lease ran out (exec-a might only be slow), and soon after it did.
    assert 2.0 <= adoption <= 3 + 5, adoption


def test_plain_step_killed_between_its_end_and_its_checkpoint_runs_once_more(
    fleet, client, tmp_path
):
    """The one window where a finished plain step runs again: its body returned, its
    checkpoint was not written yet. It runs exactly once more; its neighbours do not."""
    log, workflow_id = str(tmp_path / "effects.log"), "wf-window"
    first = fleet.spawn(
        "exec-w", "--start", "five_steps", "--workflow-id", workflow_id,
        "--args", f'["{log}", 0]', "--hold-checkpoint", STEP, "--log", log,
    )  # fmt: skip
    # Step 1's body has finished ("done 1") and the process is held before its checkpoint.
    wait_for(lambda: f"committed {workflow_id}" in read_lines(log), 30, "step 1 to end")
    assert "done 1" in read_lines(log)
    first.kill()
    c = client()
    assert c.list_steps(workflow_id) == []  # the outcome never reached the database

    fleet.spawn("exec-w")
    assert c.retrieve_workflow(workflow_id).result(timeout=30) == [10, 20, 30, 40, 50]
    lines = read_lines(log)
    assert lines.count("done 1") == 2, lines  # the window: exactly one extra run
    for n in (2, 3, 4, 5):
        assert lines.count(f"started {n}") == 1, lines
