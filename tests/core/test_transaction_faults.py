"""@transaction under frozen executions and full pools: exactly-once holds, nothing blocks for
ever, and a pool timeout pauses the step instead of failing it."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import create_engine, text

from durable_core import Engine, sql_session, transaction, workflow, workflow_id
from durable_core.errors import ConfigurationError, StepInterrupted
from durable_core.transactions import TransactionTimeouts

postgres_only = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


def make_table(engine: Engine) -> str:
    table = f"t_{uuid.uuid4().hex[:8]}"
    with engine.transactions.engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} (k TEXT PRIMARY KEY, n INTEGER NOT NULL)"))
    return table


def rows(engine: Engine, table: str) -> list[tuple]:
    with engine.transactions.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT k, n FROM {table} ORDER BY k"))]


# -- another execution committed first, and ours then failed inside the body ---------------------


@transaction
def insert_key(table: str, key: str) -> str:
    if key.startswith("raced-"):
        # While this execution runs, an adopter's execution of the same step commits: the app
        # row and the step's output row (what a frozen worker's adopter does).
        app = sql_session().get_bind()
        with app.engine.begin() as other:
            other.execute(text(f"INSERT INTO {table} (k, n) VALUES (:k, 1)"), {"k": key})
            other.execute(
                text(
                    "INSERT INTO durable_transaction_outputs (workflow_id, step_id, output, "
                    "created_at) VALUES (:w, 1, :o, 0)"
                ),
                {"w": workflow_id(), "o": '"committed by the adopter"'},
            )
    # Our own INSERT now meets the application's unique key.
    sql_session().execute(text(f"INSERT INTO {table} (k, n) VALUES (:k, 1)"), {"k": key})
    return "committed here"


@workflow
def inserts_key(table: str, key: str) -> str:
    return insert_key(table, key)


@postgres_only
def test_error_in_body_after_another_execution_committed_is_success(engine):
    table = make_table(engine)
    key = f"raced-{uuid.uuid4().hex[:6]}"
    handle = engine.start_workflow(inserts_key, table, key)
    assert handle.result(timeout=20) == "committed by the adopter"
    assert handle.status().status == "SUCCESS"
    assert rows(engine, table) == [(key, 1)]  # the effect happened exactly once
    steps = engine.list_steps(handle.workflow_id)
    assert steps[0].error is None and steps[0].result == "committed by the adopter"


def test_error_in_body_without_a_committed_output_is_the_steps_error(engine):
    table = make_table(engine)
    key = f"plain-{uuid.uuid4().hex[:6]}"
    with engine.transactions.engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {table} (k, n) VALUES (:k, 1)"), {"k": key})
    handle = engine.start_workflow(inserts_key, table, key)
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        handle.result(timeout=20)
    assert handle.status().status == "ERROR"


# -- a frozen execution's transaction times out --------------------------------------------------

FREEZES: dict[str, threading.Event] = {}
ATTEMPTS: dict[str, int] = {}


@transaction
def bump(table: str, key: str, freeze: str | None) -> int:
    ATTEMPTS[key + str(freeze)] = ATTEMPTS.get(key + str(freeze), 0) + 1
    sql_session().execute(text(f"UPDATE {table} SET n = n + 1 WHERE k = :k"), {"k": key})
    if freeze is not None and ATTEMPTS[key + str(freeze)] == 1:
        FREEZES[freeze].wait(10)  # frozen (SIGSTOP, GC pause, partition) holding the row lock
    return sql_session().execute(text(f"SELECT n FROM {table} WHERE k = :k"), {"k": key}).scalar()


@workflow
def bumps(table: str, key: str, freeze: str | None) -> int:
    return bump(table, key, freeze)


@postgres_only
def test_frozen_transaction_times_out_and_releases_its_locks(database_url):
    engine = Engine(
        database_url,
        executor_id=f"frozen-{uuid.uuid4().hex[:8]}",
        run_scheduler=False,
        transaction_timeouts={"lock": 0.5, "idle": 1.0},
    ).launch()
    try:
        table = make_table(engine)
        key = "row"
        with engine.transactions.engine.begin() as conn:
            conn.execute(text(f"INSERT INTO {table} (k, n) VALUES (:k, 0)"), {"k": key})
        freeze = uuid.uuid4().hex
        FREEZES[freeze] = threading.Event()
        frozen = engine.start_workflow(bumps, table, key, freeze)
        deadline = time.monotonic() + 10
        while ATTEMPTS.get(key + freeze, 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        other = engine.start_workflow(bumps, table, key, None)
        # The frozen transaction is ended by the server after 1 s idle: the other step gets
        # the row well before the freeze (10 s) would have ended.
        assert other.result(timeout=8) == 1
        assert time.monotonic() - started < 8
        FREEZES[freeze].set()  # the frozen worker wakes: its step runs again, exactly once
        assert frozen.result(timeout=20) == 2
        assert rows(engine, table) == [(key, 2)]
    finally:
        engine.shutdown(timeout=5)


def test_transaction_timeouts_are_validated(tmp_path):
    assert TransactionTimeouts.of({"lock": 2, "idle": None}).settings() == ("2000", "0")
    with pytest.raises(ConfigurationError, match="lock"):
        TransactionTimeouts(lock=-1)
    with pytest.raises(ConfigurationError, match="idle"):
        Engine(f"sqlite:///{tmp_path / 'x.sqlite3'}", transaction_timeouts={"idle": float("nan")})
    with pytest.raises(ConfigurationError, match="'lock' and 'idle'"):
        TransactionTimeouts.of({"lok": 1})


# -- the application database's pool ------------------------------------------------------------

BUSY = threading.Semaphore(0)


@transaction
def hold_connection(table: str, key: str) -> str:
    sql_session().execute(text(f"INSERT INTO {table} (k, n) VALUES (:k, 1)"), {"k": key})
    time.sleep(0.6)  # the step's own work, holding its connection
    return key


@workflow
def holds_connection(table: str, key: str) -> str:
    return hold_connection(table, key)


def test_pool_timeout_pauses_the_step_instead_of_failing_it(database_url):
    """An application pool smaller than the concurrency: steps wait for a connection (a pool
    timeout is an outage), none ends in ERROR with 'QueuePool limit reached'."""
    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    app = create_engine(url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    engine = Engine(
        database_url,
        app_database=app,
        executor_id=f"pool-{uuid.uuid4().hex[:8]}",
        run_scheduler=False,
    ).launch()
    try:
        table = make_table(engine)
        handles = [engine.start_workflow(holds_connection, table, f"k{i}") for i in range(4)]
        assert sorted(h.result(timeout=30) for h in handles) == ["k0", "k1", "k2", "k3"]
        assert [h.status().status for h in handles] == ["SUCCESS"] * 4
        assert len(rows(engine, table)) == 4
    finally:
        engine.shutdown(timeout=5)
        app.dispose()


def test_app_pool_created_from_a_url_is_sized_to_the_concurrency(database_url):
    engine = Engine(
        database_url,
        executor_id=f"size-{uuid.uuid4().hex[:8]}",
        run_scheduler=False,
        max_workers=40,
    )
    pool = engine.transactions.engine.pool
    if database_url.startswith("sqlite"):
        return  # SQLite: one writer at a time; SQLAlchemy's default pool
    assert pool.size() + pool._max_overflow == 40  # noqa: SLF001 - SQLAlchemy exposes no getter


# -- a BaseException inside the body ---------------------------------------------------------


@transaction
def exits_inside(table: str) -> None:
    sql_session().execute(text(f"INSERT INTO {table} (k, n) VALUES ('gone', 1)"))
    raise SystemExit(2)


@workflow
def calls_exits_inside(table: str) -> str:
    try:
        exits_inside(table)
    except StepInterrupted as exc:
        return f"caught {exc.error_type}"
    return "no error"


def test_base_exception_in_transaction_body_rolls_back_and_is_its_failure(engine):
    table = make_table(engine)
    handle = engine.start_workflow(calls_exits_inside, table)
    assert handle.result(timeout=20) == "caught SystemExit"
    assert rows(engine, table) == []  # rolled back
    assert "SystemExit" in (engine.list_steps(handle.workflow_id)[0].error or "")
