"""A burst of sync waits parks at once instead of holding every pool thread for the suspend
threshold (before: 10,000 ``recv`` workflows took 157.7 s to park, 10,000 ``sleep`` 10.1 s)."""

from __future__ import annotations

import time
import uuid

from durable_core import Engine, recv, send, step, workflow


@step
def burst_stamp(i: int) -> int:
    return i


@workflow
def burst_receiver(i: int) -> str:
    burst_stamp(i)
    return f"{i}:{recv('burst', timeout=300)}"


def test_a_burst_of_recv_waits_parks_without_holding_the_pool(database_url):
    # A threshold far longer than the test: only the on-thread quota (8 // 4 = 2) may wait
    # on a thread; every other receiver must park at once, leaving threads for new work.
    with Engine(
        database_url,
        executor_id=f"burst-{uuid.uuid4().hex[:6]}",
        max_workers=8,
        suspend_threshold=120,
        run_scheduler=False,
    ) as engine:
        handles = [engine.start_workflow(burst_receiver, i) for i in range(40)]
        deadline = time.monotonic() + 60
        while len(engine.parking.parked) < 38 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(engine.parking.parked) >= 38
        assert engine.parking.waiting_in_thread <= engine.parking.in_thread_limit == 2
        for h in handles:
            send(h.workflow_id, "go", topic="burst")
        assert [h.result(timeout=60) for h in handles] == [f"{i}:go" for i in range(40)]
