"""The step checkpoint and a workflow's INSERT run prepared through libpq (store/prepared.py).

Before: every checkpoint went through psycopg's cursor layer, about half of a checkpoint's
client CPU. These tests pin what the faster path must keep: it is the path taken, what it
stores is what was given (never cut short), its errors are psycopg's (a duplicate is still
told apart from ownership lost), a connection killed under it is retried, and whatever does
not qualify goes through psycopg as before."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from durable_core import Engine, step, workflow
from durable_core.store import OwnershipLost, open_store


def postgres_only(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("the prepared path is the PostgreSQL driver's (SQLite runs sqlite3 directly)")


@pytest.fixture
def store(database_url, backend):
    """A store of its own, with no engine threads sharing its pool: each test knows which
    connection its next statement gets (the LIFO pool's last returned)."""
    postgres_only(backend)
    opened = open_store(database_url)
    opened.migrate()
    yield opened
    opened.close()


@step
def prepared_double(x: int) -> int:
    return 2 * x


@workflow(name="prepared_twice")
def prepared_twice(x: int) -> int:
    return prepared_double(prepared_double(x))


def owned_workflow(store) -> tuple[str, str]:
    """A PENDING workflow row and its run token, as a running execution holds them."""
    workflow_id = f"prepared-{uuid.uuid4().hex[:8]}"
    store.run(
        "INSERT INTO durable_workflows (workflow_id, name, status, run_token, created_at, "
        "updated_at) VALUES (%s, %s, 'PENDING', %s, 0, 0)",
        (workflow_id, "prepared_twice", "token-1"),
    )
    return workflow_id, "token-1"


def test_checkpoints_and_workflow_inserts_run_prepared(database_url, backend):
    postgres_only(backend)
    # One pooled connection: every statement of the engine runs on it.
    with Engine(database_url, pool_size=1, queues=[], run_scheduler=False) as engine:
        handle = engine.start_workflow(prepared_twice, 3)
        assert handle.result(timeout=30) == 12
        with engine.store.pool.connection() as conn:
            rows = conn.execute("SELECT name FROM pg_prepared_statements").fetchall()
        assert {"durable_1", "durable_2"} <= {r[0] for r in rows}
        steps = engine.store.list_steps(handle.workflow_id)
        assert [(s.step_id, s.output) for s in steps] == [(1, "6"), (2, "12")]


def test_a_value_with_nul_is_never_cut_short(store):
    workflow_id, token = owned_workflow(store)
    with pytest.raises(Exception) as raised:
        store.record_step(workflow_id, token, 1, "s", '"a\x00b"', None, None, 0)
    assert "0x00" in str(raised.value) or "NUL" in str(raised.value)
    assert store.list_steps(workflow_id) == []


def test_a_duplicate_checkpoint_is_still_told_from_ownership_lost(store):
    workflow_id, token = owned_workflow(store)
    store.record_step(workflow_id, token, 1, "s", "1", None, None, 0)
    # The same execution again (a retried INSERT whose first attempt committed): done.
    store.record_step(workflow_id, token, 1, "s", "1", None, None, 0)
    with pytest.raises(OwnershipLost):
        store.record_step(workflow_id, "another-token", 2, "s", "1", None, None, 0)
    store.run(
        "UPDATE durable_workflows SET run_token = 'token-2' WHERE workflow_id = %s", (workflow_id,)
    )
    with pytest.raises(OwnershipLost):
        store.record_step(workflow_id, token, 1, "s", "1", None, None, 0)
    assert [s.step_id for s in store.list_steps(workflow_id)] == [1]


def test_a_connection_killed_under_a_prepared_checkpoint_is_retried(store):
    workflow_id, token = owned_workflow(store)
    store.record_step(workflow_id, token, 1, "s", "1", None, None, 0)
    with store.pool.connection() as conn:
        pid = conn.pgconn.backend_pid
    with psycopg.connect(store.conninfo, autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
    # The next checkpoint gets the dead connection first (LIFO), fails on it, and is retried.
    store.record_step(workflow_id, token, 2, "s", "2", None, None, 0)
    assert [s.step_id for s in store.list_steps(workflow_id)] == [1, 2]
    with store.pool.connection() as conn:
        assert conn.pgconn.backend_pid != pid


def test_what_does_not_qualify_goes_through_psycopg(store):
    prepared = store.prepared
    with store.pool.connection() as conn:
        sql = store._record_step_sql
        # A bool or a float would be sent as text psycopg never writes ("True", "1.5").
        for odd in (True, 1.5, b"x"):
            params = ("w", odd, "s", None, None, None, 0, 0, 1, "w", "t")
            assert prepared.run(conn, sql, params) is None
        assert prepared.run(conn, "SELECT 1", ()) is None  # not registered


def test_a_connection_not_in_utf8_is_left_to_psycopg(store):
    prepared = store.prepared
    with psycopg.connect(store.conninfo, autocommit=True) as conn:
        conn.execute("SET client_encoding TO 'LATIN1'")
        prepared.adopt(conn)
        params = ("w", 1, "s", None, None, None, 0, 0, 1, "w", "t")
        assert prepared.run(conn, store._record_step_sql, params) is None
        foreign = psycopg.connect(store.conninfo, autocommit=True)
        try:  # a connection our pool did not open (an application's) is left alone too
            assert prepared.run(foreign, store._record_step_sql, params) is None
        finally:
            foreign.close()
