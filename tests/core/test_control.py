"""Cancel, resume, fork, timeouts, dead-lettering and garbage collection."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid

import pytest

from durable_core import recv, sleep, step, workflow, write_stream
from durable_core.errors import DurableError, WorkflowCancelled, WorkflowFailed
from tests.waiting import wait_for as wait_until

GATES: dict[str, threading.Event] = {}
RAN: dict[str, list[int]] = {}


@step
def record(key: str, n: int) -> int:
    RAN.setdefault(key, []).append(n)
    return n


@step
def wait_gate(key: str) -> None:
    GATES[key].wait(10)


@workflow
def gated(key: str) -> list[int]:
    record(key, 1)
    wait_gate(key)
    record(key, 3)
    return RAN[key]


@workflow
def parent_of_sleeper() -> None:
    nap()


@workflow
def nap() -> None:
    sleep(30)


@workflow
def long_wait() -> object:
    return recv(timeout=30)


@workflow
def stream_then_step(key: str) -> int:
    write_stream("s", "before")
    record(key, 2)
    write_stream("s", "after")
    return 3


def test_cancel_stops_at_next_step_and_resume_continues(engine):
    key = str(uuid.uuid4())
    GATES[key] = threading.Event()
    handle = engine.start_workflow(gated, key)
    assert wait_until(lambda: len(engine.list_steps(handle.workflow_id)) == 1)
    engine.cancel_workflow(handle.workflow_id)
    GATES[key].set()
    with pytest.raises(WorkflowCancelled):
        handle.result(timeout=10)
    assert handle.status().status == "CANCELLED"
    assert RAN[key] == [1]  # step 3 never ran
    resumed = engine.resume_workflow(handle.workflow_id)
    assert resumed.result(timeout=10) == [1, 3]  # step 1 replayed, not re-run


def test_cancel_reaches_children(engine):
    handle = engine.start_workflow(parent_of_sleeper)
    child_id = f"{handle.workflow_id}-1"
    assert wait_until(lambda: child_id in engine.parking.parked)
    engine.cancel_workflow(handle.workflow_id)
    assert engine.retrieve_workflow(child_id).status().status == "CANCELLED"
    with pytest.raises(WorkflowCancelled):
        handle.result(timeout=10)


def test_workflow_timeout_cancels_and_children_inherit(engine):
    handle = engine.start_workflow(parent_of_sleeper, timeout=0.5)
    with pytest.raises(WorkflowCancelled, match="timed out"):
        handle.result(timeout=10)
    child = engine.retrieve_workflow(f"{handle.workflow_id}-1").status()
    assert child.deadline is not None and child.deadline <= handle.status().deadline
    assert wait_until(
        lambda: engine.retrieve_workflow(child.workflow_id).status().status == "CANCELLED"
    )


def test_result_timeout_raises_timeout_error(engine):
    handle = engine.start_workflow(long_wait)
    with pytest.raises(TimeoutError):
        handle.result(timeout=0.2)
    engine.send(handle.workflow_id, "done")
    assert handle.result(timeout=10) == "done"


def test_fork_copies_outcomes_and_streams(engine):
    key = str(uuid.uuid4())
    handle = engine.start_workflow(stream_then_step, key)
    assert handle.result(timeout=10) == 3
    fork = engine.fork_workflow(handle.workflow_id, 2, workflow_id=f"fork-{key}")
    assert fork.workflow_id == f"fork-{key}"
    assert fork.result(timeout=10) == 3
    assert list(engine.read_stream(fork.workflow_id, "s")) == ["before", "after"]
    assert RAN[key] == [2, 2]
    with pytest.raises(DurableError, match="at most 4"):
        engine.fork_workflow(handle.workflow_id, 9)
    with pytest.raises(DurableError, match="start_step"):
        engine.fork_workflow(handle.workflow_id, 0)


def test_max_recovery_attempts_dead_letters(engine):
    @workflow(name=f"fragile-{uuid.uuid4()}", max_recovery_attempts=1)
    def fragile() -> str:
        return "never reached"

    row, _ = engine.create_workflow(
        fragile.__durable_workflow__, (), {}, workflow_id=str(uuid.uuid4())
    )
    wid = row.workflow_id
    # Two crashes: each recovery counts an attempt; the second exceeds the limit of 1.
    for _ in range(2):
        engine.store.run(
            "UPDATE durable_workflows SET run_token = 'dead', executor_id = %s WHERE workflow_id = %s",
            (engine.executor_id, wid),
        )
        claimed = engine.store.claim_workflow(
            wid, engine.executor_id, uuid.uuid4().hex, expected_token="dead", count_recovery=True
        )
    assert claimed.status == "MAX_RECOVERY_ATTEMPTS_EXCEEDED"
    with pytest.raises(WorkflowFailed, match="MAX_RECOVERY_ATTEMPTS_EXCEEDED"):
        engine.retrieve_workflow(wid).result(timeout=5)
    assert engine.resume_workflow(wid).result(timeout=10) == "never reached"


def test_garbage_collect(engine):
    key = str(uuid.uuid4())
    done = engine.start_workflow(stream_then_step, key)
    done.result(timeout=10)
    running = engine.start_workflow(long_wait)
    assert engine.garbage_collect(dt.timedelta(hours=1)) == 0
    time.sleep(0.01)
    assert engine.garbage_collect(dt.timedelta(0)) >= 1
    with pytest.raises(DurableError):
        engine.retrieve_workflow(done.workflow_id)
    assert engine.retrieve_workflow(running.workflow_id).status().status == "PENDING"
    with pytest.raises(DurableError):
        engine.garbage_collect(dt.timedelta(days=-1))
    engine.send(running.workflow_id, 1)
