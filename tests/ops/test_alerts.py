"""Alert hooks: on_workflow_failed and on_dead_letter are called, and logged at ERROR with the
workflow's ID and name; a hook that raises changes nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import threading
import uuid

import pytest

from durable_core import Engine, Queue, recovery, workflow
from durable_core.testing import TestEngine
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


# -- queue stuck, executor lost: watched by the maintenance pass, here on a test clock ----------

stuck_queue = Queue(f"alerts-stuck-{RUN}")


@workflow(name=f"alerts-ghost-{RUN}")
def ghost_flow() -> str:
    return "adopted"


def test_on_queue_stuck_is_called_once_per_episode_and_logged(database_url, caplog):
    caplog.set_level(logging.ERROR, logger="durable_core")
    calls: list[tuple] = []
    with TestEngine(
        database_url,
        queues=["nobody-serves-this"],
        queue_stuck_after=60,
        on_queue_stuck=lambda *args: calls.append(args),
    ) as eng:
        first = stuck_queue.enqueue(ghost_flow)
        stuck_queue.enqueue(ghost_flow)
        eng.advance(59)
        assert calls == []
        eng.advance(2)
        [(queue, oldest, waited, enqueued)] = calls
        assert (queue, oldest, enqueued) == (stuck_queue.name, first.workflow_id, 2)
        assert 60 < waited < 62
        eng.advance(120)
        assert len(calls) == 1  # once per episode
        messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any(stuck_queue.name in m and first.workflow_id in m for m in messages)
        # Caught up (nothing enqueued), then stuck again: a second report.
        for row in eng.list_workflows(queue=stuck_queue.name):
            eng.cancel_workflow(row.workflow_id)
        eng.advance(1)
        again = stuck_queue.enqueue(ghost_flow)
        eng.advance(61)
        assert [c[1] for c in calls] == [first.workflow_id, again.workflow_id]


def test_on_executor_lost_is_called_before_adoption_and_logged(database_url, caplog):
    caplog.set_level(logging.ERROR, logger="durable_core")
    calls: list[tuple] = []
    with TestEngine(database_url, on_executor_lost=lambda *args: calls.append(args)) as eng:
        ghost = f"ghost-{uuid.uuid4().hex[:6]}"
        lease_ms = int(eng.lease_seconds * 1000)
        assert eng.store.heartbeat(ghost, eng.application_version, "elsewhere", 4242, lease_ms)
        row, _ = eng.create_workflow(
            ghost_flow.__durable_workflow__, (), {}, workflow_id=str(uuid.uuid4())
        )
        eng.store.run(
            "UPDATE durable_workflows SET status = 'PENDING', run_token = 'gone', "
            "executor_id = %s WHERE workflow_id = %s",
            (ghost, row.workflow_id),
        )
        eng.advance(eng.lease_seconds - 1)
        assert calls == []
        eng.advance(2)
        assert calls == [(ghost, [row.workflow_id])]
        messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any(ghost in m and row.workflow_id in m and "lost" in m for m in messages)
        eng.run_until_idle()
        assert eng.retrieve_workflow(row.workflow_id).result(timeout=10) == "adopted"
        eng.advance(60)
        assert len(calls) == 1  # once
        # An engine launched after the lease ran out does not report it (old history).
        eng.fleet_watch = recovery.FleetWatch(eng)
        eng.check_alerts()
        assert len(calls) == 1


def test_alert_settings_are_checked(database_url):
    with pytest.raises(ValueError, match="queue_stuck_after"):
        Engine(database_url, on_queue_stuck=print)
    with pytest.raises(ValueError, match="queue_stuck_after"):
        Engine(database_url, queue_stuck_after=0)
    with pytest.raises(TypeError, match="on_executor_lost"):
        Engine(database_url, on_executor_lost=42)
