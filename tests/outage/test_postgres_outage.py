"""PostgreSQL stopped for 20 seconds in the middle of a run: workflows pause (statements are
retried with backoff, the LISTEN connection reconnects), no engine thread dies, nothing is
lost or marked failed, and work continues when the server is back. The server stopped is the
test suite's own throwaway cluster (tests.faultlab), never the machine's."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import pytest
from sqlalchemy import create_engine

from durable_core import Engine
from durable_core.store import parse_database_url
from tests.chaos.flows import APP_TABLE, APP_TABLE_DDL, outage_queue, steady
from tests.chaos.invariants import by_step, read_executions
from tests.crash.harness import wait_for
from tests.crash.workers import read_lines
from tests.defaults import as_default

pytestmark = [pytest.mark.crash, pytest.mark.timeout(150)]

OUTAGE_SECONDS = 20.0
DIRECT, QUEUED, STEPS = 6, 6, 12
ENGINE_THREADS = ("durable-maintenance", "durable-listener", "durable-queues")


def engine_threads(ignore: frozenset = frozenset()) -> Counter:
    """This engine's background threads (threads of engines other tests left behind, which
    existed before this test launched its own, are ignored)."""
    return Counter(
        t.name for t in threading.enumerate() if t.name in ENGINE_THREADS and t not in ignore
    )


def test_postgres_down_for_20_seconds(fault_db, tmp_path):
    url, log = fault_db.url, str(tmp_path / "effects.log")
    cluster = fault_db.cluster
    app = create_engine(parse_database_url(url).sqlalchemy, pool_pre_ping=True)
    with app.begin() as conn:
        conn.exec_driver_sql(APP_TABLE_DDL)
    engine = Engine(
        url,
        app_database=app,
        executor_id=f"outage-{uuid.uuid4().hex[:8]}",
        application_version="test",
        run_scheduler=False,
    )
    others = frozenset(threading.enumerate())
    engine.launch()
    try:
        assert engine_threads(others) == Counter(ENGINE_THREADS)
        handles = [
            engine.start_workflow(steady, log, i, STEPS, 0.3, workflow_id=f"direct-{i}")
            for i in range(DIRECT)
        ]
        # Queued work that becomes due while the server is down: dequeued after it returns.
        with as_default(engine):  # an earlier test may have left its engine the default
            handles += [
                outage_queue.enqueue(
                    steady, log, 100 + i, STEPS, 0.3, workflow_id=f"queued-{i}", delay=3
                )
                for i in range(QUEUED)
            ]
        wait_for(lambda: len(read_lines(log)) >= 2 * DIRECT, 30, "the first steps to run")
        with cluster.down("fast"):
            down_at = time.time()
            time.sleep(OUTAGE_SECONDS)  # the outage itself: nothing to wait for but the clock
            assert engine_threads(others) == Counter(ENGINE_THREADS), "an engine thread died"
        up_at = time.time()
        results = [h.result(timeout=90) for h in handles]
        finished_at = time.time()
        assert engine_threads(others) == Counter(ENGINE_THREADS), "an engine thread died"
        assert results == [*range(DIRECT), *range(100, 100 + QUEUED)]
        statuses = engine.store.fetchall(
            "SELECT status, COUNT(*) FROM durable_workflows GROUP BY status"
        )
        assert statuses == [("SUCCESS", DIRECT + QUEUED)]
        # The heartbeat resumed after the outage (the maintenance thread is working again).
        wait_for(
            lambda: (
                engine.store.fetchone(
                    "SELECT heartbeat_at FROM durable_executors WHERE executor_id = %s",
                    (engine.executor_id,),
                )[0]
                > up_at * 1000
            ),
            engine.heartbeat_seconds + 15,
            "a heartbeat after the outage",
        )
        steps = engine.store.fetchall(
            "SELECT workflow_id, COUNT(*) FROM durable_steps GROUP BY workflow_id"
        )
        assert sorted(n for _, n in steps) == [STEPS] * (DIRECT + QUEUED)
    finally:
        engine.shutdown(timeout=5)
    with app.connect() as conn:
        effects = conn.exec_driver_sql(f"SELECT workflow_id, step_id FROM {APP_TABLE}").fetchall()
    app.dispose()
    expected = {(f"{kind}-{i}", s) for kind, n in (("direct", DIRECT), ("queued", QUEUED))
                for i in range(n) for s in range(2, STEPS + 1, 2)}  # fmt: skip
    assert Counter(map(tuple, effects)) == Counter(expected)  # each effect exactly once
    executions = read_executions(read_lines(log))
    first_after = min(e.start for e in executions if e.start > up_at)
    runs = by_step(executions)
    plain = {k: v for k, v in runs.items() if k[1] % 2}
    assert all(len(v) == 1 for v in plain.values())  # an outage re-runs no completed step
    print(
        f"PostgreSQL down {up_at - down_at:.1f}s; first new step "
        f"{first_after - up_at:.2f}s after it was back; all "
        f"{DIRECT + QUEUED} workflows done {finished_at - up_at:.1f}s after it was back"
    )
