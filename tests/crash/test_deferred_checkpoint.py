"""SIGKILL while a body runs code outside steps after a plain step: the step's checkpoint was
deferred (it goes with the workflow's outcome when the body returns next), so the bound that
the maintenance pass writes it within ``Engine(checkpoint_delay=0.5)`` (+ its half-second
cycle) is what keeps a crash after that from running the finished step again."""

from __future__ import annotations

import json

import pytest

from tests.crash.harness import wait_for
from tests.crash.workers import read_lines, step_then_linger

pytestmark = [pytest.mark.crash, pytest.mark.timeout(120)]


def test_a_crash_after_the_deferred_checkpoint_is_written_does_not_run_the_step_again(
    fleet, client, tmp_path
):
    log = str(tmp_path / "effects.log")
    first = fleet.spawn(
        "exec-d", "--start", step_then_linger.__name__, "--workflow-id", "wf-deferred",
        "--args", json.dumps([log]),
    )  # fmt: skip
    wait_for(lambda: "lingering" in read_lines(log), 30, "the body to go on after the step")
    c = client()
    # Nothing else durable happens in the body: only the maintenance pass can write it.
    wait_for(lambda: c.store.load_steps("wf-deferred"), 10, "the deferred checkpoint")
    first.kill()
    fleet.spawn("exec-d")  # the same executor: recovers its own PENDING work at launch
    wait_for(
        lambda: read_lines(log).count("lingering") == 2, 30, "the restarted body to pass the step"
    )
    assert read_lines(log).count("effect") == 1  # the recorded outcome was returned, not re-run
