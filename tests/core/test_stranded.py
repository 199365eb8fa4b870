"""No stranded work: whatever a step or the engine's own bookkeeping raises, a workflow on a
live worker ends (recorded) or is found again; it never stays PENDING with nothing logged."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

import pytest

from durable_core import Engine, Queue, recv, step, workflow
from durable_core.errors import StepInterrupted, WorkflowFailed
from durable_core.serialization import JSONSerializer


def wait_status(engine, workflow_id: str, statuses: set[str], timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = engine.retrieve_workflow(workflow_id).status().status
        if status in statuses:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"{workflow_id} still {status} after {timeout}s")
        time.sleep(0.05)


class CustomInterrupt(BaseException):
    pass


@step
def raises_base(kind: str) -> None:
    if kind == "exit":
        raise SystemExit(3)
    if kind == "keyboard":
        raise KeyboardInterrupt("pressed in a worker thread")
    raise CustomInterrupt("custom")


@workflow
def calls_base(kind: str) -> str:
    raises_base(kind)
    return "unreachable"


@workflow
def catches_base(kind: str) -> str:
    try:
        raises_base(kind)
    except StepInterrupted as exc:
        return f"caught {exc.error_type}"
    return "no error"


@workflow
def workflow_body_exits() -> None:
    raise SystemExit(4)


@pytest.mark.parametrize("kind", ["exit", "keyboard", "custom"])
def test_step_raising_base_exception_is_its_failure(engine, kind):
    handle = engine.start_workflow(calls_base, kind)
    assert wait_status(engine, handle.workflow_id, {"ERROR"}) == "ERROR"
    steps = engine.list_steps(handle.workflow_id)
    expected = {"exit": "SystemExit", "keyboard": "KeyboardInterrupt", "custom": "CustomInterrupt"}
    assert steps[0].error is not None and expected[kind] in steps[0].error
    with pytest.raises(StepInterrupted):
        handle.result(timeout=5)
    # The recorded failure replays as the same exception: the workflow code may handle it.
    caught = engine.start_workflow(catches_base, kind)
    assert caught.result(timeout=20) == f"caught {expected[kind]}"


def test_workflow_body_raising_system_exit_ends_in_error(engine):
    handle = engine.start_workflow(workflow_body_exits)
    assert wait_status(engine, handle.workflow_id, {"ERROR"}) == "ERROR"
    # Rebuilt as an ordinary error: reading a result never raises SystemExit in the reader.
    with pytest.raises(WorkflowFailed, match="SystemExit"):
        handle.result(timeout=5)


@step
async def cancelled_subtask() -> None:
    task = asyncio.ensure_future(asyncio.sleep(30))
    await asyncio.sleep(0)
    task.cancel()
    await task  # raises CancelledError: the sub-task's, not this workflow's


@workflow
async def async_calls_cancelled() -> str:
    await cancelled_subtask()
    return "unreachable"


@step
async def async_custom_base() -> None:
    raise CustomInterrupt("async custom")


@workflow
async def async_calls_custom() -> str:
    await async_custom_base()
    return "unreachable"


@pytest.mark.parametrize("flow", ["cancelled", "custom"])
def test_async_step_raising_base_exception_is_its_failure(engine, flow, caplog):
    fn = async_calls_cancelled if flow == "cancelled" else async_calls_custom
    handle = engine.start_workflow(fn)
    assert wait_status(engine, handle.workflow_id, {"ERROR"}) == "ERROR"
    steps = engine.list_steps(handle.workflow_id)
    name = "CancelledError" if flow == "cancelled" else "CustomInterrupt"
    assert steps[0].error is not None and name in steps[0].error


class BareSerializer:
    """The documented minimum: an object with dumps and loads, nothing else."""

    def __init__(self) -> None:
        self.inner = JSONSerializer()

    def dumps(self, value):
        if value == "refuse me":
            raise RuntimeError("this serializer cannot store that")
        return self.inner.dumps(value)

    def loads(self, data):
        return self.inner.loads(data)


class Boom(Exception):
    pass


@workflow
def fails_plainly() -> None:
    raise Boom("plain failure")


@workflow
def returns_unstorable() -> str:
    return "refuse me"


class BadMessage(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")


@workflow
def fails_with_broken_str() -> None:
    raise BadMessage()


@pytest.fixture
def bare_engine(database_url):
    eng = Engine(
        database_url,
        executor_id=f"bare-{uuid.uuid4().hex[:8]}",
        serializer=BareSerializer(),
        run_scheduler=False,
    )
    eng.launch()
    yield eng
    eng.shutdown(timeout=5)


def test_custom_serializer_without_name_records_failures(bare_engine):
    handle = bare_engine.start_workflow(fails_plainly)
    assert wait_status(bare_engine, handle.workflow_id, {"ERROR"}) == "ERROR"
    with pytest.raises(Boom, match="plain failure"):
        handle.result(timeout=5)


def test_unstorable_outcomes_are_recorded_and_logged(bare_engine, caplog):
    caplog.set_level(logging.WARNING, logger="durable_core")
    unstorable = bare_engine.start_workflow(returns_unstorable)
    assert wait_status(bare_engine, unstorable.workflow_id, {"ERROR"}) == "ERROR"
    error = bare_engine.retrieve_workflow(unstorable.workflow_id).status().error
    assert "cannot store that" in (error or "")
    broken = bare_engine.start_workflow(fails_with_broken_str)
    assert wait_status(bare_engine, broken.workflow_id, {"ERROR"}) == "ERROR"
    assert any(broken.workflow_id in r.getMessage() for r in caplog.records)


children = Queue("stranded_children")


@workflow
def waits_long() -> None:
    recv("never", timeout=120)


@workflow
def parent_with_deadline() -> str:
    handle = children.enqueue(waits_long, timeout=300)
    return handle.workflow_id


def test_enqueued_child_keeps_the_earlier_deadline(engine):
    """A child enqueued with its own (later) timeout still ends by its parent's deadline."""
    parent = engine.start_workflow(parent_with_deadline, timeout=3)
    child_id = parent.result(timeout=10)
    assert wait_status(engine, child_id, {"PENDING", "CANCELLED"}) in {"PENDING", "CANCELLED"}
    row = engine.store.get_workflow(child_id)
    parent_row = engine.store.get_workflow(parent.workflow_id)
    assert row is not None and parent_row is not None
    assert row.deadline is not None and row.deadline <= parent_row.deadline
    assert wait_status(engine, child_id, {"CANCELLED"}, timeout=20) == "CANCELLED"
    error = json.loads(engine.store.get_workflow(child_id).error)
    assert "timed out" in error["message"]
