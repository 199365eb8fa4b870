"""Queue limits hold across worker processes sharing one database (issue 4)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.crash.harness import REPO_ROOT, max_in_window, max_overlap, migrate
from tests.crash.workers import (
    concurrency_queue,
    dedup_queue,
    prioritized,
    priority_queue,
    rate_queue,
    read_lines,
    timed,
)

pytestmark = [pytest.mark.crash, pytest.mark.timeout(120)]


def start_workers(fleet, count: int, *options: str):
    workers = [fleet.spawn(f"worker-{i}", *options) for i in range(count)]
    for worker in workers:
        worker.wait_ready()
    return workers


def test_global_concurrency_never_exceeded_by_three_workers(fleet, client):
    # worker_concurrency=1: each process runs one at most, so 3 could run; the limit is 2.
    start_workers(fleet, 3)
    c = client()
    handles = [
        c.enqueue(concurrency_queue.name, timed.__durable_workflow__.name, 0.4) for _ in range(8)
    ]
    spans = [tuple(h.result(timeout=60)) for h in handles]
    executors = {h.status().executor_id for h in handles}
    peak = max_overlap(spans)
    print(f"max running at once: {peak}; executors: {sorted(executors)}")
    assert peak <= 2
    assert peak == 2, "the limit was never reached: the test would not notice a broken limit"
    assert len(executors) >= 2


def test_rate_limit_never_exceeded_in_any_one_second_window(fleet, client):
    start_workers(fleet, 3)
    c = client()
    handles = [c.enqueue(rate_queue.name, timed.__durable_workflow__.name, 0.0) for _ in range(25)]
    for h in handles:
        h.result(timeout=60)
    starts = [
        r[0]
        for r in c.store.fetchall(
            "SELECT started_at FROM durable_workflows WHERE queue_name = %s", (rate_queue.name,)
        )
    ]
    assert len(starts) == 25
    peak = max_in_window(starts, 1000)
    span = max(starts) - min(starts)
    print(f"most starts in one second: {peak}; 25 starts over {span} ms")
    assert peak <= 10
    assert span >= 2000  # 25 starts at 10 per second need at least two full windows


def test_priority_order_with_worker_concurrency_one(fleet, client, database_url, tmp_path):
    migrate(database_url)
    log = str(tmp_path / "order.log")
    c = client()
    priorities = [5, 3, 8, 1, 7, 2, 6, 4]
    handles = [
        c.enqueue(priority_queue.name, prioritized.__durable_workflow__.name, log, p, priority=p)
        for p in priorities
    ]
    start_workers(fleet, 1, "--queues", priority_queue.name)
    for h in handles:
        h.result(timeout=60)
    assert read_lines(log) == [f"run {p}" for p in sorted(priorities)]


def test_deduplication_under_concurrent_enqueues_from_processes(database_url, client, tmp_path):
    migrate(database_url)
    go = tmp_path / "go"
    command = [sys.executable, "-m", "tests.crash.run_enqueuer", database_url,
               dedup_queue.name, timed.__durable_workflow__.name, "order-42", "4", str(go)]  # fmt: skip
    procs = [
        subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        go.touch()
        reports = [json.loads(proc.communicate(timeout=60)[0]) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [r["errors"] for r in reports] == [[], [], []]
    winners = [wid for r in reports for wid in r["ok"]]
    assert len(winners) == 1, reports
    assert sum(r["conflicts"] for r in reports) == 11
    rows = client().store.fetchall(
        "SELECT workflow_id, status FROM durable_workflows WHERE deduplication_id = %s",
        ("order-42",),
    )
    assert rows == [(winners[0], "ENQUEUED")]
