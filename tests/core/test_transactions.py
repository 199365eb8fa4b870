"""@transaction steps: effects and checkpoint commit together; replay never re-runs them."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from durable_core import sql_session, transaction, workflow
from durable_core.errors import NotInWorkflow


@transaction
def insert_row(table: str, value: str) -> int:
    session = sql_session()
    session.execute(text(f"CREATE TABLE IF NOT EXISTS {table} (v TEXT)"))
    session.execute(text(f"INSERT INTO {table} (v) VALUES (:v)"), {"v": value})
    return session.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


@transaction
def insert_then_fail(table: str) -> None:
    sql_session().execute(text(f"INSERT INTO {table} (v) VALUES ('doomed')"))
    raise RuntimeError("fail after insert")


@workflow
def writes(table: str) -> int:
    insert_row(table, "a")
    return insert_row(table, "b")


@workflow
def writes_then_fails(table: str) -> str:
    insert_row(table, "kept")
    try:
        insert_then_fail(table)
    except RuntimeError as exc:
        return str(exc)
    return "no error"


def count_rows(engine, table: str) -> int:
    with engine.transactions.engine.connect() as conn:
        return conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def test_transaction_writes_once_and_replays(engine):
    table = f"t_{uuid.uuid4().hex[:8]}"
    handle = engine.start_workflow(writes, table)
    assert handle.result(timeout=10) == 2
    # Forking from step 2 replays step 1's recorded outcome: no new row for it.
    assert engine.fork_workflow(handle.workflow_id, 2).result(timeout=10) == 3
    assert count_rows(engine, table) == 3
    with engine.transactions.engine.connect() as conn:
        outputs = conn.execute(
            text(
                "SELECT step_id FROM durable_transaction_outputs WHERE workflow_id = :w ORDER BY step_id"
            ),
            {"w": handle.workflow_id},
        ).fetchall()
    assert [r[0] for r in outputs] == [1, 2]


def test_transaction_error_rolls_back(engine):
    table = f"t_{uuid.uuid4().hex[:8]}"
    handle = engine.start_workflow(writes_then_fails, table)
    assert handle.result(timeout=10) == "fail after insert"
    assert count_rows(engine, table) == 1
    steps = engine.list_steps(handle.workflow_id)
    assert steps[1].error == "RuntimeError: fail after insert"


def test_recorded_transaction_output_is_not_run_again(engine):
    """A crash after the app commit but before the checkpoint: the output row is found."""
    table = f"t_{uuid.uuid4().hex[:8]}"
    handle = engine.start_workflow(writes, table)
    handle.result(timeout=10)
    # Remove the system checkpoints but keep the app-side output rows, then fork from 1.
    fork = engine.fork_workflow(handle.workflow_id, 1, workflow_id=f"fork-{table}")
    fork.result(timeout=10)
    assert count_rows(engine, table) == 4
    with engine.transactions.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO durable_transaction_outputs (workflow_id, step_id, output, created_at) "
                "VALUES (:w, 1, '99', 0)"
            ),
            {"w": f"again-{table}"},
        )
    again = engine.fork_workflow(handle.workflow_id, 1, workflow_id=f"again-{table}")
    assert again.result(timeout=10) == 5  # step 1 took the recorded 99, only step 2 wrote
    assert engine.list_steps(again.workflow_id)[0].result == 99


def test_sql_session_outside_a_transaction():
    with pytest.raises(NotInWorkflow):
        sql_session()
