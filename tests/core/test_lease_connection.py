"""The lease is renewed on a connection of its own.

Before: the heartbeat took a connection from the engine's pool like every step. With every
pooled connection held by a statement waiting on a lock (CI: ``test_table_lock[workflows]``, a
worker with 16 threads on 8 connections while ``durable_workflows`` was locked for twice the
lease), the heartbeat waited for the pool, the lease ran out, and the other workers adopted
this live worker's workflows the moment the lock was released: 8 plain steps ran twice."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

from durable_core import Engine


def heartbeat_at(url: str, executor_id: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT heartbeat_at FROM durable_executors WHERE executor_id = %s", (executor_id,)
        ).fetchone()
        return int(row[0])


def test_the_lease_is_renewed_while_every_pooled_connection_waits_on_a_lock(database_url, backend):
    if backend != "postgres":
        pytest.skip("a PostgreSQL pool matter: the SQLite store has no connection pool")
    executor = f"lease-{uuid.uuid4().hex[:8]}"
    with Engine(
        database_url,
        executor_id=executor,
        pool_size=2,
        max_workers=2,
        lease_seconds=4,
        heartbeat_seconds=0.25,
        queues=[],
        run_scheduler=False,
    ) as engine:
        engine.renew_lease()
        locker = psycopg.connect(database_url)
        waiters: list[threading.Thread] = []
        try:
            locker.execute("LOCK TABLE durable_workflows IN ACCESS EXCLUSIVE MODE")
            # Every pooled connection now waits on the lock, as steps' checkpoints would.
            for _ in range(engine.pool_size):
                t = threading.Thread(
                    target=engine.store.fetchone,
                    args=("SELECT COUNT(*) FROM durable_workflows",),
                    daemon=True,
                )
                t.start()
                waiters.append(t)
            with psycopg.connect(database_url, autocommit=True) as watcher:
                # This engine's connections only: other tests' lock waits must not count.
                blocked = (
                    "SELECT COUNT(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND application_name = %s"
                )
                name = (f"durable {executor}",)
                deadline = time.monotonic() + 30
                while watcher.execute(blocked, name).fetchone()[0] < engine.pool_size:
                    assert time.monotonic() < deadline, "the pool's statements never blocked"
                    time.sleep(0.05)
            before = heartbeat_at(database_url, executor)
            # Several heartbeat intervals, well inside the lease: renewals must land.
            deadline = time.monotonic() + 3
            renewed = before
            while renewed == before and time.monotonic() < deadline:
                time.sleep(0.1)
                renewed = heartbeat_at(database_url, executor)
            assert renewed > before, "the heartbeat waited for the pool while the table was locked"
            assert engine.heartbeat.contact_seconds > 0  # contact counted as unbroken
        finally:
            locker.rollback()
            locker.close()
            for t in waiters:
                t.join(30)
        assert not any(t.is_alive() for t in waiters)
