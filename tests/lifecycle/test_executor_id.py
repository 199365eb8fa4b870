"""Two live processes with one executor ID (issue 10): a launch next to a live worker that
holds the ID is refused; once that worker is killed, a launch with its ID takes it over at
once and recovers its work (same host, dead process ID). Real worker processes, both
backends."""

from __future__ import annotations

import time

import pytest

from durable_core import Engine
from durable_core.errors import ExecutorIdInUse
from tests.crash.harness import wait_for
from tests.crash.workers import read_lines, skew_item, skew_queue

pytestmark = [pytest.mark.crash, pytest.mark.timeout(120)]

LEASE = 4


def test_a_live_executor_id_is_refused_and_a_dead_ones_is_taken_at_once(
    fleet, client, database_url, tmp_path
):
    log = str(tmp_path / "effects.log")
    worker = fleet.spawn("shared-id", "--lease", str(LEASE), "--heartbeat", "1")
    worker.wait_ready()
    c = client()
    handle = c.enqueue(
        skew_queue.name, skew_item.__durable_workflow__.name, log, "t", 10.0, workflow_id="held"
    )
    wait_for(lambda: read_lines(log), 30, "the worker to start the step")

    duplicate = Engine(
        database_url,
        executor_id="shared-id",
        application_version="test",
        lease_seconds=LEASE,
        heartbeat_seconds=1,
        run_scheduler=False,
    )
    started = time.monotonic()
    with pytest.raises(ExecutorIdInUse, match="shared-id"):
        duplicate.launch()
    assert time.monotonic() - started < LEASE + 5
    assert handle.status().executor_id == "shared-id"
    assert handle.status().recovery_attempts == 0  # the live worker's work was not touched

    worker.kill()
    started = time.monotonic()
    duplicate.launch()  # the same host and a dead process ID: not live
    try:
        assert time.monotonic() - started < LEASE
        assert handle.result(timeout=30) == "t"
        assert handle.status().recovery_attempts == 1  # recovered by the relaunch
    finally:
        duplicate.shutdown(timeout=5)
