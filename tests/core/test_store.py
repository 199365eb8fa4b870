"""The system database: migrations, schema versions, bad URLs, and the hot path's round trips."""

from __future__ import annotations

import logging
import uuid

import pytest

from durable_core import Engine, step, workflow
from durable_core.errors import ConfigurationError, DatabaseUnavailable, SchemaVersionError
from durable_core.store import open_store, redact
from durable_core.store.schema import CURRENT_VERSION
from tests.statements import captured


@step
def noop(i: int) -> int:
    return i


@workflow
def n_steps(n: int) -> int:
    for i in range(n):
        noop(i)
    return n


def test_migrate_is_idempotent(database_url):
    store = open_store(database_url)
    try:
        assert store.migrate() == CURRENT_VERSION
        assert store.migrate() == CURRENT_VERSION
        assert store.schema_version() == CURRENT_VERSION
    finally:
        store.close()


def test_newer_schema_is_refused(database_url):
    store = open_store(database_url)
    try:
        store.migrate()
        store.run("INSERT INTO durable_schema (version) VALUES (%s)", (CURRENT_VERSION + 1,))
        with pytest.raises(SchemaVersionError, match="newer than this release"):
            store.migrate()
        with pytest.raises(SchemaVersionError):
            Engine(database_url).launch()
    finally:
        store.close()


def test_a_step_is_one_statement(engine):
    """The hot path: one INSERT per step; the start is one statement, and the last step's
    checkpoint goes with the finish: one statement on PostgreSQL, one transaction of two on
    SQLite (in-process calls, not round trips)."""
    n_steps(1)  # warm up
    with captured(engine.store, this_thread=True) as seen:  # not the engine's other threads
        assert n_steps(20) == 20
    statements = [sql for sql, _ in seen]
    inserts = [s for s in statements if s.startswith("INSERT INTO durable_steps")]
    if engine.store.dialect == "postgresql":
        assert len(inserts) == 19  # the 20th is written by the finish
        assert len(statements) == 21, statements[-2:]
        assert statements[-1].startswith("WITH finished AS (UPDATE durable_workflows")
        assert "INSERT INTO durable_steps" in statements[-1]
    else:
        assert len(inserts) == 20
        assert len(statements) == 22, statements[-2:]
        assert statements[-2].startswith("UPDATE durable_workflows SET status")
    steps = engine.list_steps(engine.list_workflows(limit=1)[0].workflow_id)
    assert [s.step_id for s in steps] == list(range(1, 21))
    assert all(s.finished_at is not None and s.started_at <= s.finished_at for s in steps)


def test_malformed_urls_are_clear_and_hide_passwords():
    with pytest.raises(ConfigurationError, match="Malformed"):
        Engine("not a url")
    with pytest.raises(ConfigurationError, match="Unsupported") as info:
        Engine("mysql://user:hunter2@host/db")
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigurationError, match="file path"):
        Engine("sqlite:///:memory:")
    assert redact("postgresql://u:secret@h:5432/d") == "postgresql://u:***@h:5432/d"


def test_unreachable_database_at_launch():
    engine = Engine("postgresql://someone:s3cret@127.0.0.1:1/nowhere")
    with pytest.raises(DatabaseUnavailable) as info:
        engine.launch()
    assert "s3cret" not in str(info.value) and "127.0.0.1" in str(info.value)


def test_unknown_workflow_name_at_recovery_is_skipped(engine, caplog):
    defn = n_steps.__durable_workflow__
    row, _ = engine.create_workflow(defn, (1,), {}, workflow_id=f"ghost-{uuid.uuid4()}")
    known, _ = engine.create_workflow(defn, (2,), {}, workflow_id=f"known-{uuid.uuid4()}")
    engine.store.run(
        "UPDATE durable_workflows SET name = 'gone.module.workflow' WHERE workflow_id = %s",
        (row.workflow_id,),
    )
    with caplog.at_level(logging.WARNING, logger="durable_core.engine"):
        recovered = engine.recover_pending()
    assert [h.workflow_id for h in recovered] == [known.workflow_id]
    assert recovered[0].result(timeout=10) == 2
    assert "gone.module.workflow" in caplog.text
    ghost = engine.retrieve_workflow(row.workflow_id).status()
    assert ghost.status == "PENDING" and ghost.recovery_attempts == 0
