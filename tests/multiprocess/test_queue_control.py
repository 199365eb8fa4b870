"""Queue settings stored by one process bind the claims of worker processes (issue 14)."""

from __future__ import annotations

import time

import pytest

from tests.crash.harness import max_overlap
from tests.crash.workers import control_marker_queue, control_queue, timed
from tests.waiting import wait_for

pytestmark = [pytest.mark.crash, pytest.mark.timeout(120)]

TIMED = timed.__durable_workflow__.name

# Claims record started_at from each process's database clock; two processes' calibrations
# can differ by a round trip, so "after the pause" allows this much.
CLOCK_SLACK_MS = 100


def a_full_pass(c) -> None:
    """Wait until every worker has made a dequeue pass that began after this call (each
    serves both queues in one pass; a marker enqueued after an earlier one finished is
    claimed by such a pass). Sequential markers: a worker is proven by the one it claims."""
    for _ in range(2):
        c.enqueue(control_marker_queue.name, TIMED, 0.0).result(timeout=30)


def test_a_pause_stored_by_one_process_stops_claims_in_another_at_once(fleet, client):
    worker = fleet.spawn("worker-0")
    worker.wait_ready()
    c = client()
    c.set_queue_limits(control_queue.name, worker_concurrency=2)  # keeps a backlog waiting
    backlog = [c.enqueue(control_queue.name, TIMED, 0.05) for _ in range(60)]
    wait_for(
        lambda: c.count_workflows(status="SUCCESS", queue=control_queue.name) >= 3,
        what="the worker draining the backlog",
    )
    assert c.pause_queue(control_queue.name).paused
    paused_at = c.store.now_ms()
    a_full_pass(c)
    rows = c.store.fetchall(
        "SELECT status, started_at FROM durable_workflows WHERE queue_name = %s",
        (control_queue.name,),
    )
    late = [started for _, started in rows if started is not None and started > paused_at]
    waiting = sum(1 for status, _ in rows if status == "ENQUEUED")
    print(f"started after the pause: {len(late)}; still enqueued: {waiting} of 60")
    assert all(started <= paused_at + CLOCK_SLACK_MS for started in late), late
    assert waiting > 0, "the backlog drained before the pause: the test proves nothing"
    assert c.get_queue(control_queue.name).enqueued == waiting

    resumed = time.monotonic()
    c.resume_queue(control_queue.name)
    wait_for(
        lambda: c.count_workflows(status="ENQUEUED", queue=control_queue.name) < waiting,
        timeout=10,
        what="a claim after the resume",
    )
    print(f"first claim {time.monotonic() - resumed:.3f} s after the resume")
    for handle in backlog:
        handle.result(timeout=60)


def test_concurrency_set_at_run_time_holds_across_three_workers(fleet, client):
    workers = [fleet.spawn(f"worker-{i}") for i in range(3)]
    for worker in workers:
        worker.wait_ready()
    c = client()
    # worker_concurrency=1: each process runs one at most, so 3 could run; the limit is 2.
    info = c.set_queue_limits(control_queue.name, concurrency=2, worker_concurrency=1)
    assert (info.concurrency, info.worker_concurrency) == (2, 1)
    handles = [c.enqueue(control_queue.name, TIMED, 0.4) for _ in range(8)]
    spans = [tuple(h.result(timeout=60)) for h in handles]
    executors = {h.status().executor_id for h in handles}
    peak = max_overlap(spans)
    print(f"max running at once: {peak}; executors: {sorted(executors)}")
    assert peak == 2, "the stored limit was broken, or never reached"
    assert len(executors) >= 2

    # Lifted at run time: the same workers now run three at once (one each).
    c.set_queue_limits(control_queue.name, concurrency=None)
    handles = [c.enqueue(control_queue.name, TIMED, 0.4) for _ in range(8)]
    spans = [tuple(h.result(timeout=60)) for h in handles]
    assert max_overlap(spans) == 3
