"""The connection footprint: pools sized to the engine's work, idle connections released.

Before: every engine opened up to 40 pooled connections (plus its listener) and kept them for
the life of the process, so three default workers exhausted ``max_connections=100``."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest

from durable_core import Engine, step, workflow
from durable_core.errors import ConfigurationError
from durable_core.store.pool import LifoPool
from tests.conftest import PG_URL


def server_connections(application_name: str) -> int:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        return conn.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchone()[0]


def test_idle_connections_are_closed_down_to_one():
    name = f"budget-{uuid.uuid4().hex[:8]}"
    pool = LifoPool(PG_URL, max_size=5, idle_timeout=0, autocommit=True, application_name=name)
    try:
        barrier = threading.Barrier(4)

        def use() -> None:
            with pool.connection() as conn:
                conn.execute("SELECT 1")
                barrier.wait(10)  # all four open at once

        threads = [threading.Thread(target=use) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert pool.size == 1
        assert server_connections(name) == 1
        with pool.connection() as conn:  # the one kept is still usable
            assert conn.execute("SELECT 2").fetchone() == (2,)
    finally:
        pool.close()
    assert server_connections(name) == 0


def test_default_pool_sizes(tmp_path):
    url = f"sqlite:///{tmp_path / 'd.sqlite3'}"
    assert Engine(url).pool_size == 16  # a worker: min(max_workers, 16)
    assert Engine(url, max_workers=4).pool_size == 4
    assert Engine(url, queues=[], run_scheduler=False).pool_size == 4  # starts workflows only
    assert Engine(url, pool_size=7).pool_size == 7
    with pytest.raises(ConfigurationError, match="pool_size"):
        Engine(url, pool_size=0)
    with pytest.raises(ConfigurationError, match="deadline_interval"):
        Engine(url, deadline_interval=-1)
    assert Engine(url, adopt_interval=0).adopt_interval == 0
    assert Engine(url, lease_seconds=30, heartbeat_seconds=10).adopt_interval == 10


@step
def budget_step(i: int) -> int:
    return i


@workflow
def budget_flow(i: int) -> int:
    return budget_step(budget_step(i))


def test_an_engine_never_opens_more_than_its_pool(database_url, backend):
    if backend != "postgres":
        pytest.skip("server connections are a PostgreSQL matter")
    executor = f"budget-{uuid.uuid4().hex[:8]}"
    with Engine(database_url, executor_id=executor, pool_size=3, max_workers=32) as engine:
        handles = [engine.start_workflow(budget_flow, i) for i in range(200)]
        assert [h.result(timeout=120) for h in handles] == list(range(200))
        # The pool (3), the LISTEN connection and the lease's own connection.
        assert server_connections(f"durable {executor}") <= 5
