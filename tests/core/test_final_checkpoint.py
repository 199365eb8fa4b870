"""The checkpoint of the step a sync workflow ran last is written with the workflow's outcome
(one round trip on PostgreSQL instead of two), and never later than the next durable call,
the execution's unwinding, or about a second after the step's end."""

from __future__ import annotations

import threading
import uuid

import pytest

from durable_core import Engine, recv, set_event, step, workflow
from tests.waiting import wait_for

release = threading.Event()
effects: list[str] = []


@step
def final_add(i: int) -> int:
    effects.append(f"add {i}")
    return i + 1


@workflow
def final_one(i: int) -> int:
    return final_add(i)


@workflow
def final_then_fail(i: int) -> int:
    final_add(i)
    raise ValueError(f"after the step: {i}")


@workflow
def final_then_block(i: int) -> int:
    value = final_add(i)
    release.wait(30)  # code outside steps that takes a while
    return value


@workflow
def final_then_event(i: int) -> int:
    value = final_add(i)
    set_event("after", value)
    return value


@workflow
def final_then_recv(i: int) -> int:
    value = final_add(i)
    recv("go", timeout=30)  # parks: the step must be recorded before the thread goes
    return value


@pytest.fixture
def engine(database_url):
    eng = Engine(
        database_url,
        executor_id=f"final-{uuid.uuid4().hex[:6]}",
        suspend_threshold=0.0,
        hold_seconds=0,  # every wait parks
        run_scheduler=False,
    )
    eng.launch()
    yield eng
    eng.shutdown(timeout=5)


def _statements(engine: Engine) -> tuple[list[str], object]:
    seen: list[str] = []
    original = engine.store.execute
    me = threading.get_ident()

    def counting(conn, sql, params=()):
        if threading.get_ident() == me:
            seen.append(sql)
        return original(conn, sql, params)

    engine.store.execute = counting  # type: ignore[method-assign]
    return seen, original


def test_a_one_step_workflow_is_a_start_and_one_finish(engine):
    defn = final_one.__durable_workflow__
    assert engine.start_workflow(final_one, 0).result(timeout=10) == 1  # warm up
    seen, original = _statements(engine)
    try:
        row, _ = engine.create_workflow(defn, (41,), {})
        assert engine.run_inline(defn, row) == 42  # in this thread
    finally:
        engine.store.execute = original  # type: ignore[method-assign]
    expected = 2 if engine.store.dialect == "postgresql" else 3  # SQLite: UPDATE + INSERT, one tx
    assert len(seen) == expected, seen
    wid = row.workflow_id
    (only,) = engine.list_steps(wid)
    assert (only.step_id, only.name, only.result) == (1, final_add.__durable_step__.name, 42)
    assert engine.retrieve_workflow(wid).status().status == "SUCCESS"


def test_a_failure_after_the_step_records_both(engine):
    handle = engine.start_workflow(final_then_fail, 1)
    with pytest.raises(ValueError, match="after the step: 1"):
        handle.result(timeout=10)
    (only,) = engine.list_steps(handle.workflow_id)
    assert only.result == 2 and only.error is None
    assert handle.status().status == "ERROR"


def test_a_long_tail_after_the_step_gets_its_checkpoint_within_about_a_second(engine):
    release.clear()
    handle = engine.start_workflow(final_then_block, 2)
    # Not waiting for the outcome: the maintenance pass writes the deferred checkpoint.
    wait_for(lambda: len(engine.list_steps(handle.workflow_id)) == 1, timeout=5, what="the step")
    release.set()
    assert handle.result(timeout=10) == 3
    assert [s.step_id for s in engine.list_steps(handle.workflow_id)] == [1]


def test_the_step_is_recorded_before_the_next_durable_call(engine):
    handle = engine.start_workflow(final_then_event, 3)
    assert handle.result(timeout=10) == 4
    steps = engine.list_steps(handle.workflow_id)
    assert [s.step_id for s in steps] == [1, 2]
    assert steps[0].finished_at <= steps[1].started_at


def test_a_parked_workflow_has_its_step_recorded_and_does_not_run_it_again(engine):
    effects.clear()
    handle = engine.start_workflow(final_then_recv, 4)
    wid = handle.workflow_id
    wait_for(lambda: wid in engine.parking.parked, timeout=10, what="the recv to park")
    assert [s.step_id for s in engine.list_steps(wid)] == [1]
    engine.send(wid, "go", topic="go")
    assert handle.result(timeout=10) == 5
    assert effects.count("add 4") == 1  # the replay returned the recorded outcome


step_returned = threading.Event()


@step
def strict_add(i: int) -> int:
    return i + 1


@workflow
def strict_then_block(i: int) -> int:
    value = strict_add(i)
    step_returned.set()
    release.wait(30)  # code outside steps that takes a while
    return value


def test_checkpoint_delay_0_writes_the_checkpoint_before_the_body_goes_on(database_url):
    """With ``checkpoint_delay=0`` nothing is deferred: the step's row is there as soon as the
    step returns, while the body is still busy (with the default it would be written by the
    maintenance pass up to about a second later, or with the outcome)."""
    release.clear()
    step_returned.clear()
    with Engine(
        database_url,
        executor_id=f"strict-{uuid.uuid4().hex[:6]}",
        checkpoint_delay=0,
        run_scheduler=False,
    ) as strict:
        handle = strict.start_workflow(strict_then_block, 7)
        assert step_returned.wait(10)
        steps = strict.list_steps(handle.workflow_id)
        release.set()
        assert [(s.step_id, s.result) for s in steps] == [(1, 8)]
        assert handle.result(timeout=10) == 8


def test_checkpoint_delay_must_not_be_negative(database_url):
    from durable_core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="checkpoint_delay"):
        Engine(database_url, checkpoint_delay=-1)
