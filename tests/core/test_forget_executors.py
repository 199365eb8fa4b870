"""A crashed executor's row does not stay forever: the maintenance loop deletes it once it has
been dead longer than ``forget_executors_after`` and its work was adopted. An executor that
still holds PENDING work (nobody here can adopt it) keeps its row, and so does a live one.
Both backends."""

from __future__ import annotations

import uuid

import pytest

from durable_core import Engine, workflow
from durable_core.errors import ConfigurationError
from tests.waiting import wait_for


@workflow
def left_behind(n: int) -> str:
    return f"adopted {n}"


def _executor(store, executor_id: str, heartbeat_at: int) -> None:
    store.run(
        "INSERT INTO durable_executors (executor_id, application_version, hostname, pid, "
        "started_at, heartbeat_at) VALUES (%s, %s, %s, %s, %s, %s)",
        (executor_id, "v", "gone.example", 1, heartbeat_at - 60_000, heartbeat_at),
    )


def _pending(engine, executor_id: str, version: str | None) -> str:
    row, _ = engine.create_workflow(
        left_behind.__durable_workflow__, (1,), {}, workflow_id=str(uuid.uuid4())
    )
    engine.store.run(
        "UPDATE durable_workflows SET status = 'PENDING', run_token = 'dead', executor_id = %s, "
        "application_version = %s WHERE workflow_id = %s",
        (executor_id, version, row.workflow_id),
    )
    return row.workflow_id


def _ids(engine) -> set[str]:
    return {row[0] for row in engine.store.executors()}


def test_dead_executors_are_forgotten_once_their_work_is_adopted(database_url):
    with Engine(
        database_url,
        executor_id=f"keeper-{uuid.uuid4().hex[:6]}",
        lease_seconds=2,
        heartbeat_seconds=0.5,
        adopt_interval=0.2,
        forget_executors_after=1,
        run_scheduler=False,
    ) as engine:
        now = engine.store.now_ms()
        crashed, stuck, fresh = (f"{k}-{uuid.uuid4().hex[:6]}" for k in ("crashed", "stuck", "new"))
        _executor(engine.store, crashed, now - 10_000)
        _executor(engine.store, stuck, now - 10_000)
        _executor(engine.store, fresh, now + 60_000)  # renewed "later": alive for the test
        adopted = _pending(engine, crashed, engine.application_version)
        kept = _pending(engine, stuck, "another-release")  # no engine here may adopt it

        assert engine.retrieve_workflow(adopted).result(timeout=30) == "adopted 1"
        wait_for(lambda: crashed not in _ids(engine), 30, "the crashed executor's row to go")
        assert {stuck, fresh, engine.executor_id} <= _ids(engine)
        assert engine.retrieve_workflow(kept).status().status == "PENDING"
        engine.cancel_workflow(kept)
    # A clean shutdown removes its own row (as before).
    assert engine.executor_id not in _executor_ids(database_url)


def _executor_ids(database_url: str) -> set[str]:
    from durable_core import Client

    with Client(database_url) as client:
        return {e.executor_id for e in client.list_executors()}


def test_zero_keeps_dead_rows_and_negative_is_refused(database_url):
    with pytest.raises(ConfigurationError):
        Engine(database_url, forget_executors_after=-1)
    with Engine(
        database_url,
        lease_seconds=2,
        heartbeat_seconds=0.5,
        adopt_interval=0.2,
        forget_executors_after=0,
        run_scheduler=False,
    ) as engine:
        dead = f"dead-{uuid.uuid4().hex[:6]}"
        _executor(engine.store, dead, engine.store.now_ms() - 3_600_000)
        adopted = _pending(engine, dead, engine.application_version)
        assert engine.retrieve_workflow(adopted).result(timeout=30) == "adopted 1"
        assert dead in _ids(engine)  # adoption happened; the row stays
