"""Alert hooks: on_workflow_failed and on_dead_letter are called, and logged at ERROR with the
workflow's ID and name; a hook that raises changes nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import threading
import uuid

import pytest

from durable_core import Engine, recovery, workflow
from tests.waiting import wait_for

RUN = uuid.uuid4().hex[:8]


@workflow(name=f"alerts-bad-{RUN}")
def bad_flow() -> None:
    raise ValueError("boom")


@workflow(name=f"alerts-fragile-{RUN}", max_recovery_attempts=1)
def fragile_flow() -> str:
    return "fine"


@pytest.fixture
def alerting(database_url):
    calls: list[tuple] = []
    called = threading.Event()

    def failed(workflow_id, name, error):
        calls.append(("failed", workflow_id, name, error))
        called.set()
        raise RuntimeError("a broken hook")  # logged, never changes the workflow

    def dead(workflow_id, name):
        calls.append(("dead", workflow_id, name))
        called.set()

    eng = Engine(
        database_url,
        executor_id=f"alerts-{uuid.uuid4().hex[:8]}",
        run_scheduler=False,
        on_workflow_failed=failed,
        on_dead_letter=dead,
    )
    eng.launch()
    eng.calls, eng.called = calls, called
    yield eng
    eng.shutdown(timeout=5)


def test_on_workflow_failed_is_called_and_logged(alerting, caplog):
    caplog.set_level(logging.ERROR, logger="durable_core")
    handle = alerting.start_workflow(bad_flow)
    with pytest.raises(ValueError):
        handle.result(timeout=10)
    assert alerting.called.wait(10)
    [(kind, wid, name, error)] = alerting.calls
    assert (kind, wid, name) == ("failed", handle.workflow_id, f"alerts-bad-{RUN}")
    assert isinstance(error, ValueError)
    assert handle.status().status == "ERROR"  # the hook's own exception changed nothing
    # The hook raised after it signalled: wait for that to be logged.
    wait_for(
        lambda: any("on_workflow_failed hook raised" in r.getMessage() for r in caplog.records)
    )
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(handle.workflow_id in m and f"alerts-bad-{RUN}" in m for m in messages)


def test_on_dead_letter_is_called_and_logged(alerting, caplog):
    caplog.set_level(logging.ERROR, logger="durable_core")
    row, _ = alerting.create_workflow(
        fragile_flow.__durable_workflow__, (), {}, workflow_id=str(uuid.uuid4())
    )
    alerting.store.run(
        "UPDATE durable_workflows SET status = 'PENDING', run_token = 'dead', executor_id = %s, "
        "recovery_attempts = 1 WHERE workflow_id = %s",
        (alerting.executor_id, row.workflow_id),
    )
    assert recovery.recover_rows(alerting, [(row.workflow_id, "dead", row.name)]) == []
    assert alerting.calls == [("dead", row.workflow_id, f"alerts-fragile-{RUN}")]
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(row.workflow_id in m and "dead-lettered" in m and row.name in m for m in messages)


def test_hooks_must_be_callable(database_url):
    with pytest.raises(TypeError, match="on_dead_letter"):
        Engine(database_url, on_dead_letter="page me")
