"""A step's attempts are recorded with its checkpoint: a step that failed twice and then
succeeded shows 3, a first-try step 1, a step whose retries ran out all of its attempts.
The count is written by the checkpoint's own INSERT (no statement of its own). Both backends."""

from __future__ import annotations

import uuid

import pytest

from durable_core import sleep, step, step_attempt, workflow
from durable_core.errors import StepRetriesExceeded
from tests.statements import captured

FAILURES: dict[str, int] = {}


@step(retries=3, retry_delay=0.01, backoff=1.0)
def flaky(key: str, failures: int) -> str:
    if step_attempt() <= failures:
        raise ConnectionError(f"attempt {step_attempt()} of {key}")
    return f"ok on {step_attempt()}"


@step
def steady(n: int) -> int:
    return n + 1


@workflow
def retried_then_fine(key: str) -> list:
    return [steady(1), flaky(key, 2), steady(2)]


@workflow
def retried_out(key: str) -> str:
    return flaky(key, 10)


@workflow
def waits_a_little(key: str) -> int:
    sleep(0.01)
    return steady(3)


def test_a_step_that_failed_twice_then_succeeded_shows_three_attempts(engine):
    key = uuid.uuid4().hex
    handle = engine.start_workflow(retried_then_fine, key)
    assert handle.result(timeout=30) == [2, "ok on 3", 3]
    steps = engine.list_steps(handle.workflow_id)
    assert [(s.name.rpartition(".")[2], s.attempts) for s in steps] == [
        ("steady", 1),
        ("flaky", 3),
        ("steady", 1),
    ]
    assert steps[1].error is None and steps[1].result == "ok on 3"
    # The stored rows say the same (what the dashboard and the admin read).
    assert [r.attempts for r in engine.store.list_steps(handle.workflow_id)] == [1, 3, 1]


def test_a_step_whose_retries_ran_out_records_every_attempt(engine):
    handle = engine.start_workflow(retried_out, uuid.uuid4().hex)
    with pytest.raises(StepRetriesExceeded):
        handle.result(timeout=30)
    [failed] = engine.list_steps(handle.workflow_id)
    assert failed.attempts == 4 and failed.error is not None


def test_waits_record_one_attempt(engine):
    handle = engine.start_workflow(waits_a_little, uuid.uuid4().hex)
    assert handle.result(timeout=30) == 4
    assert [s.attempts for s in engine.list_steps(handle.workflow_id)] == [1, 1]


def test_the_attempts_travel_with_the_checkpoint_insert(engine):
    """One INSERT per step, as before: the count is a column of that statement."""
    with captured(engine.store, this_thread=True) as statements:
        assert retried_then_fine(uuid.uuid4().hex) == [2, "ok on 3", 3]  # runs in this thread
    seen = [sql for sql, _ in statements]
    # The last step's INSERT may ride in the finish (PostgreSQL: WITH finished AS (UPDATE ...)
    # INSERT INTO durable_steps ...): one statement per step either way.
    checkpoints = [s for s in seen if "INSERT INTO durable_steps" in s]
    assert len(checkpoints) == 3
    assert all("attempts" in s for s in checkpoints)
    assert not [s for s in seen if s.startswith("UPDATE durable_steps")]


def test_a_fork_and_an_export_keep_the_attempts(engine):
    handle = engine.start_workflow(retried_then_fine, uuid.uuid4().hex)
    handle.result(timeout=30)
    forked = engine.fork_workflow(handle.workflow_id, 3)
    forked.result(timeout=30)
    assert [s.attempts for s in engine.list_steps(forked.workflow_id)] == [1, 3, 1]
    exported = engine.export_workflow(handle.workflow_id)
    assert [s["attempts"] for s in exported["steps"]] == [1, 3, 1]
