"""Migrations create every table; a launch on a current schema runs no DDL; ``migrate=False``
refuses a schema behind the code; the application database's table comes from migration."""

from __future__ import annotations

import sqlite3
import uuid

import pytest
from sqlalchemy import create_engine, text

from durable_core import Engine, step, transaction, workflow
from durable_core.errors import SchemaVersionError
from durable_core.store import open_store
from durable_core.store.app_schema import app_schema_state
from durable_core.store.schema import CURRENT_VERSION, system_functions, system_tables
from tests.cli.conftest import run_cli
from tests.conftest import drop_postgres_schema, make_postgres_url


@step
def add_one(x: int) -> int:
    return x + 1


@transaction
def tx_add(x: int) -> int:
    return x + 10


@workflow
def tx_flow(x: int) -> int:
    return tx_add(add_one(x))


def _engine(url: str, **kw) -> Engine:
    return Engine(url, executor_id=f"mig-{uuid.uuid4().hex[:8]}", run_scheduler=False, **kw)


@pytest.fixture
def app_database_url(backend, tmp_path):
    """An application database of its own (not the system database), empty."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.sqlite3'}"
        return
    url, schema = make_postgres_url()
    yield url
    drop_postgres_schema(schema)


def _sqlite_schema_cookie(path: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA schema_version").fetchone()[0]


def test_durable_migrate_creates_every_table_and_launch_adds_nothing(database_url, backend):
    assert run_cli(database_url, "migrate").exit_code == 0
    store = open_store(database_url, pool_size=1)
    try:
        assert store.schema_version() == CURRENT_VERSION
        rows = store.fetchall("SELECT COUNT(*) FROM durable_schema")
    finally:
        store.close()
    assert rows[0][0] == CURRENT_VERSION
    engine = create_engine(_engine(database_url).url.sqlalchemy)
    with engine.begin() as conn:
        # The system database is the default application database: its table is migrated too.
        assert app_schema_state(conn) == "current"
    engine.dispose()
    cookie = _sqlite_schema_cookie(database_url[10:]) if backend == "sqlite" else None
    with _engine(database_url) as eng:
        assert eng.start_workflow(tx_flow, 1).result(timeout=20) == 12
    if backend == "sqlite":
        # SQLite bumps the schema cookie on any DDL: a launch and a @transaction ran none.
        assert _sqlite_schema_cookie(database_url[10:]) == cookie


def test_system_tables_lists_exactly_what_the_migrations_create(database_url):
    """``system_tables``/``system_functions`` (read from the migrations; Django's reverse
    migration drops them) name every table and trigger function a migrated database holds."""
    assert run_cli(database_url, "migrate").exit_code == 0
    store = open_store(database_url, pool_size=1)
    try:
        if store.dialect == "sqlite":
            tables = store.fetchall(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
            functions: list[tuple[str]] = []
        else:
            tables = store.fetchall(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
            functions = store.fetchall(
                "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = current_schema()"
            )
        listed = system_tables(store.dialect)
        assert sorted(listed) == sorted(r[0] for r in tables)
        assert len(set(listed)) == len(listed) and listed[-1] == "durable_schema"
        assert sorted(system_functions(store.dialect)) == sorted(r[0] for r in functions)
    finally:
        store.close()
    assert "durable_request_keys" in system_tables("sqlite")
    assert set(system_tables("sqlite")) == set(system_tables("postgresql"))
    assert system_functions("sqlite") == ()


def test_migrate_false_refuses_an_unmigrated_database(database_url, backend):
    eng = _engine(database_url, migrate=False)
    with pytest.raises(SchemaVersionError, match="durable migrate"):
        eng.launch()
    store = open_store(database_url, pool_size=1)
    try:
        assert store.schema_version() is None  # nothing was created
    finally:
        store.close()


def test_migrate_false_launches_on_a_migrated_database(database_url):
    assert run_cli(database_url, "migrate").exit_code == 0
    with _engine(database_url, migrate=False) as eng:
        assert eng.start_workflow(tx_flow, 2).result(timeout=20) == 13


def test_app_database_table_comes_from_durable_migrate(database_url, app_database_url):
    assert run_cli(database_url, "migrate").exit_code == 0
    with _engine(database_url, app_database=app_database_url, migrate=False) as eng:
        handle = eng.start_workflow(tx_flow, 3)
        with pytest.raises(Exception, match="durable migrate --app-database"):
            handle.result(timeout=20)
    result = run_cli(database_url, "migrate", "--app-database", app_database_url)
    assert result.exit_code == 0, result.output
    assert "durable_transaction_outputs" in result.output
    with _engine(database_url, app_database=app_database_url, migrate=False) as eng:
        assert eng.start_workflow(tx_flow, 3).result(timeout=20) == 14


def test_migrate_true_creates_the_app_database_table(database_url, app_database_url):
    with _engine(database_url, app_database=app_database_url) as eng:
        assert eng.start_workflow(tx_flow, 4).result(timeout=20) == 15
    engine = create_engine(_engine(app_database_url).url.sqlalchemy)
    with engine.begin() as conn:
        assert app_schema_state(conn) == "current"
    engine.dispose()


VARCHAR_TABLE = """CREATE TABLE durable_transaction_outputs (
    workflow_id VARCHAR(255) NOT NULL, step_id INTEGER NOT NULL, output TEXT, error TEXT,
    created_at BIGINT NOT NULL, PRIMARY KEY (workflow_id, step_id))"""


def test_an_older_varchar_outputs_table_is_widened_to_text():
    """Release <= 3 created the table lazily with VARCHAR(255) IDs; migration widens it."""
    url, schema = make_postgres_url()
    try:
        engine = create_engine(_engine(url).url.sqlalchemy)
        with engine.begin() as conn:
            conn.execute(text(VARCHAR_TABLE))
            assert app_schema_state(conn) == "outdated"
        assert run_cli(url, "migrate").exit_code == 0
        with engine.begin() as conn:
            assert app_schema_state(conn) == "current"
        engine.dispose()
    finally:
        drop_postgres_schema(schema)


def _migrate_to(store, version: int) -> None:
    """Apply the migrations up to ``version`` only: a database an older release left."""
    from durable_core.store.schema import MIGRATIONS

    with store.migration_lock() as conn:
        store.execute(conn, "CREATE TABLE IF NOT EXISTS durable_schema (version INTEGER NOT NULL)")
        for number, statements in enumerate(MIGRATIONS[store.dialect][:version], start=1):
            for statement in statements:
                store.execute(conn, statement)
            store.execute(conn, "INSERT INTO durable_schema (version) VALUES (%s)", (number,))


def test_upgrade_from_14_keeps_queue_limits_over_the_rows_it_holds(database_url):
    """Version 15 replaces the queue index and the rate limit's index with partial ones; a
    database at 14 with work in flight upgrades in place, and the claim's counts see the rows
    written before the upgrade."""
    from durable_core.store import QueueClaim, WorkflowRow

    store = open_store(database_url, pool_size=2)
    try:
        _migrate_to(store, 14)
        assert store.schema_version() == 14
        t = store.now_ms()
        for i, status in enumerate(["PENDING", "ENQUEUED", "ENQUEUED", "ENQUEUED", "SUCCESS"]):
            started = t if status != "ENQUEUED" else None
            store.insert_workflow(
                WorkflowRow(
                    f"w{i}",
                    "n",
                    status,
                    "q",
                    "[]",
                    application_version="v",
                    executor_id="old" if started else None,
                    created_at=t + i,
                    updated_at=t + i,
                    started_at=started,
                )  # fmt: skip
            )
        assert store.migrate() == CURRENT_VERSION
        if store.dialect == "postgresql":
            names = {r[0] for r in store.fetchall(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'durable_workflows' "
                "AND schemaname = current_schema()")}  # fmt: skip
        else:
            names = {r[0] for r in store.fetchall(
                "SELECT name FROM sqlite_master WHERE type = 'index'")}  # fmt: skip
        assert "durable_workflows_queue_idx" not in names
        assert {"durable_workflows_running_idx", "durable_workflows_queue_started_idx"} <= names
        # Concurrency 2 with one PENDING row from before the upgrade: one more may start.
        claim = QueueClaim("q", 10, 2, None, False, ("n",), ("v",))
        assert [w.workflow_id for w in store.claim_from_queue(claim, "e", "t1-")] == ["w1"]
        # A rate limit of 4 a minute with 3 starts in it (two from before the upgrade).
        claim = QueueClaim("q", 10, None, (4, 60.0), False, ("n",), ("v",))
        assert [w.workflow_id for w in store.claim_from_queue(claim, "e", "t2-")] == ["w2"]
    finally:
        store.close()
