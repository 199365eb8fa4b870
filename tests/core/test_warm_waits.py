"""A workflow with a long history keeps its execution through a wait (held warm, its thread
out of the pool) instead of parking: a wake-up then replays nothing. Before, every wake-up of
a parked sync workflow re-ran its body from the start, so a loop of (step, recv) rounds cost
O(rounds) per round (2.98 ms/round over the first 100 of 1,000 rounds, 15.7 ms over the last)."""

from __future__ import annotations

import collections
import threading
import uuid

from durable_core import Engine, recv, send, step, workflow, workflow_id
from tests.waiting import wait_for

body_runs: collections.Counter[str] = collections.Counter()


@step
def warm_tick(i: int) -> int:
    return i


@workflow
def warm_loop(rounds: int) -> int:
    body_runs[workflow_id()] += 1  # code outside steps: runs again at every replay
    total = 0
    for i in range(rounds):
        total += warm_tick(i)
        recv("go", timeout=60)
    return total


def _engine(database_url: str, **options) -> Engine:
    return Engine(
        database_url,
        executor_id=f"warm-{uuid.uuid4().hex[:6]}",
        suspend_threshold=0.0,  # every wait goes past the on-thread threshold at once
        run_scheduler=False,
        max_workers=4,
        **options,
    )


def _waiting_in_round(engine: Engine, wid: str, r: int) -> bool:
    # Before the recv of round r: ticks 0..r and recvs 0..r-1 are recorded.
    return wid in engine.parking.parked and len(engine.list_steps(wid)) == 2 * r + 1


def _drive(engine: Engine, rounds: int) -> str:
    handle = engine.start_workflow(warm_loop, rounds)
    wid = handle.workflow_id
    for r in range(rounds):
        wait_for(lambda r=r: _waiting_in_round(engine, wid, r), what=f"the wait of round {r}")
        send(wid, "go", topic="go")
    assert handle.result(timeout=30) == sum(range(rounds))
    return wid


def test_a_long_history_is_woken_without_replaying_its_body(database_url):
    with _engine(database_url) as engine:
        engine.parking.warm_history = 3  # from the second round on (tick, deadline, recv)
        wid = _drive(engine, 6)
        # One run from the start, one replay after the first (cold) park; never again.
        assert body_runs[wid] == 2
        assert engine.parking.held_warm == 0


def test_a_short_history_parks_as_before(database_url):
    with _engine(database_url) as engine:
        wid = _drive(engine, 3)  # far below warm_history: each wake-up replays
        assert body_runs[wid] == 4


def test_held_waits_leave_the_pool_to_other_work_and_shutdown_is_prompt(database_url):
    engine = _engine(database_url)
    engine.launch()
    try:
        engine.parking.warm_history = 3
        handles = [engine.start_workflow(warm_loop, 3) for _ in range(4)]
        for h in handles:  # into their second round: held warm
            wait_for(lambda h=h: _waiting_in_round(engine, h.workflow_id, 0), what="first wait")
            send(h.workflow_id, "go", topic="go")
        # Held waits count as parked, not in flight.
        wait_for(
            lambda: engine.parking.held_warm == 4 and engine.inflight == 0, what="four warm waits"
        )
        # Every pool slot is free for new work although four threads still wait.
        done = threading.Event()
        engine.run_in_pool(done.set)
        assert done.wait(10)
    finally:
        engine.shutdown(timeout=5)
    wait_for(lambda: engine.parking.held_warm == 0, timeout=5, what="warm waits ended")
