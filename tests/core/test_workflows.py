"""Workflows and steps: results, replay, determinism, retries, children, async, inspection."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

from durable_core import (
    Engine,
    StepInfo,
    WorkflowStatus,
    start_workflow,
    step,
    workflow,
    workflow_id,
)
from durable_core.errors import (
    DurableError,
    NonDeterministicWorkflow,
    NotInWorkflow,
    SerializationError,
    StepRetriesExceeded,
    WorkflowConflict,
    WorkflowNotFound,
)

CALLS: dict[str, int] = {}
LOCK = threading.Lock()


def count(key: str) -> int:
    with LOCK:
        CALLS[key] = CALLS.get(key, 0) + 1
        return CALLS[key]


@step
def add_one(x: int) -> int:
    count(f"add_one:{workflow_id()}")
    return x + 1


@workflow
def two_steps(x: int) -> int:
    return add_one(add_one(x))


@workflow()
def echo_id() -> str:
    return workflow_id()


class Boom(Exception):
    pass


FAIL_AT_THREE: set[str] = set()


@step
def maybe_fail(n: int) -> int:
    count(f"maybe_fail:{workflow_id()}:{n}")
    if n == 3 and workflow_id() in FAIL_AT_THREE:
        raise Boom("step three failed")
    return n


@workflow
def five_steps() -> list[int]:
    return [maybe_fail(i) for i in range(1, 6)]


ATTEMPTS: dict[str, int] = {}


@step(retries=2, retry_delay=0.01, backoff=2)
def flaky(key: str, succeed_on: int) -> str:
    n = count(f"flaky:{key}")
    if n < succeed_on:
        raise ValueError(f"attempt {n} failed")
    return f"ok after {n}"


@workflow
def uses_flaky(key: str, succeed_on: int) -> str:
    return flaky(key, succeed_on)


@workflow
def child(x: int) -> int:
    return add_one(x) * 10


@workflow
def parent(x: int) -> dict:
    direct = child(x)
    handle = start_workflow(child, x + 1)
    return {"direct": direct, "background": handle.result(), "bg_id": handle.workflow_id}


@step
async def async_double(x: int) -> int:
    await asyncio.sleep(0.01 * (3 - x % 3))  # finish out of call order
    return 2 * x


@workflow
async def async_gather(n: int) -> list[int]:
    return list(await asyncio.gather(*(async_double(i) for i in range(n))))


@workflow
def returns_unencodable() -> object:
    return object()


@step
def unencodable_step() -> object:
    return object()


@workflow
def calls_unencodable_step() -> str:
    try:
        unencodable_step()
    except SerializationError as exc:
        return f"caught: {exc}"
    return "no error"


def test_start_and_result(engine):
    handle = engine.start_workflow(two_steps, 1)
    assert handle.result(timeout=10) == 3
    status = handle.status()
    assert isinstance(status, WorkflowStatus)
    assert status.status == "SUCCESS" and status.result == 3 and status.args == (1,)
    assert status.name.endswith("two_steps")
    assert status.executor_id == engine.executor_id
    steps = engine.list_steps(handle.workflow_id)
    assert [s.step_id for s in steps] == [1, 2]
    assert all(isinstance(s, StepInfo) for s in steps)
    assert [s.result for s in steps] == [2, 3]


def test_direct_call_runs_durably(engine):
    assert two_steps(5) == 7
    [latest] = engine.list_workflows(name=two_steps.__durable_workflow__.name, limit=1)
    assert latest.status == "SUCCESS" and latest.result == 7


def test_same_id_runs_once(engine):
    wid = f"idem-{uuid.uuid4()}"
    first = engine.start_workflow(two_steps, 1, workflow_id=wid)
    second = engine.start_workflow(two_steps, 100, workflow_id=wid)
    assert first.result(timeout=10) == 3
    assert second.result(timeout=10) == 3
    assert CALLS[f"add_one:{wid}"] == 2
    with pytest.raises(WorkflowConflict, match=wid):
        engine.start_workflow(echo_id, workflow_id=wid)


def test_workflow_id_inside_and_outside(engine):
    wid = f"echo-{uuid.uuid4()}"
    assert engine.start_workflow(echo_id, workflow_id=wid).result(timeout=10) == wid
    with pytest.raises(NotInWorkflow):
        workflow_id()


def test_resume_replays_completed_steps(engine):
    wid = f"resume-{uuid.uuid4()}"
    FAIL_AT_THREE.add(wid)
    handle = engine.start_workflow(five_steps, workflow_id=wid)
    with pytest.raises(Boom, match="step three failed"):
        handle.result(timeout=10)
    assert handle.status().status == "ERROR"
    assert handle.status().error == "Boom: step three failed"
    FAIL_AT_THREE.discard(wid)
    # Resuming replays steps 1-2 and runs the failed step 3 again, which now succeeds.
    assert engine.resume_workflow(wid).result(timeout=10) == [1, 2, 3, 4, 5]
    assert CALLS[f"maybe_fail:{wid}:1"] == 1 and CALLS[f"maybe_fail:{wid}:3"] == 2
    # Forking from step 3 runs step 3 again; steps 1-2 come from the record.
    fork = engine.fork_workflow(wid, 3)
    assert fork.result(timeout=10) == [1, 2, 3, 4, 5]
    assert CALLS[f"maybe_fail:{wid}:4"] == 1
    assert CALLS.get(f"maybe_fail:{fork.workflow_id}:1") is None
    assert CALLS[f"maybe_fail:{fork.workflow_id}:3"] == 1


def test_step_retries_then_succeeds(engine):
    key = str(uuid.uuid4())
    assert engine.start_workflow(uses_flaky, key, 3).result(timeout=10) == "ok after 3"


def test_step_retries_exceeded(engine):
    key = str(uuid.uuid4())
    handle = engine.start_workflow(uses_flaky, key, 10)
    with pytest.raises(StepRetriesExceeded) as info:
        handle.result(timeout=10)
    assert CALLS[f"flaky:{key}"] == 3  # first attempt + 2 retries
    assert "attempt 3 failed" in str(info.value)
    [recorded] = engine.list_steps(handle.workflow_id)
    assert recorded.error.startswith("StepRetriesExceeded")


def test_child_workflows(engine):
    handle = engine.start_workflow(parent, 1)
    result = handle.result(timeout=10)
    assert result["direct"] == 20 and result["background"] == 30
    pid = handle.workflow_id
    steps = engine.list_steps(pid)
    assert [s.child_workflow_id for s in steps] == [f"{pid}-1", f"{pid}-2"]
    kid = engine.retrieve_workflow(f"{pid}-1").status()
    assert kid.parent_workflow_id == pid and kid.status == "SUCCESS"


async def test_async_workflow_gather_replays_deterministically(engine):
    handle = await engine.start_workflow_async(async_gather, 4)
    assert await handle.result_async(timeout=10) == [0, 2, 4, 6]
    steps = engine.list_steps(handle.workflow_id)
    # Step IDs follow call order even though the steps finished in another order.
    assert [(s.step_id, s.result) for s in steps] == [(1, 0), (2, 2), (3, 4), (4, 6)]
    fork = engine.fork_workflow(handle.workflow_id, 3)
    assert await fork.result_async(timeout=10) == [0, 2, 4, 6]


async def test_async_direct_call(engine):
    assert await async_gather(3) == [0, 2, 4]


@workflow
def raises_stop_iteration() -> None:
    raise StopIteration("done early")


def test_a_workflow_raising_stop_iteration_raises_it_to_its_caller(engine):
    # The body runs under a plan (a generator): its failure must still reach the caller as
    # itself, not as the RuntimeError a generator makes of a StopIteration. (An async body
    # cannot raise one at all: Python turns it into a RuntimeError in the coroutine.)
    with pytest.raises(StopIteration, match="done early"):
        raises_stop_iteration()
    name = raises_stop_iteration.__durable_workflow__.name
    [latest] = engine.list_workflows(name=name, limit=1)
    assert latest.status == "ERROR"


def test_nondeterminism_is_detected(engine):
    @workflow(name=f"nondet-{uuid.uuid4()}")
    def nondet(flag: list) -> None:
        (add_one if not flag else maybe_fail)(1)

    handle = engine.start_workflow(nondet, [])
    handle.result(timeout=10)
    # Same record, different step at step 1: forking from step 2 replays step 1.
    engine.store.run(
        "UPDATE durable_workflows SET inputs = %s WHERE workflow_id = %s",
        ('{"args":[[1]],"kwargs":{}}', handle.workflow_id),
    )
    fork = engine.fork_workflow(handle.workflow_id, 2)
    with pytest.raises(NonDeterministicWorkflow, match="add_one.*maybe_fail"):
        fork.result(timeout=10)


def test_unserializable_argument_fails_before_storing(engine):
    before = len(engine.list_workflows(limit=None))
    with pytest.raises(SerializationError, match="argument 0 of workflow .*two_steps"):
        engine.start_workflow(two_steps, object())
    with pytest.raises(SerializationError, match="argument 'x'"):
        engine.start_workflow(two_steps, x=object())
    assert len(engine.list_workflows(limit=None)) == before


def test_unencodable_results_become_errors(engine):
    handle = engine.start_workflow(returns_unencodable)
    with pytest.raises(SerializationError):
        handle.result(timeout=10)
    assert handle.status().status == "ERROR"
    caught = engine.start_workflow(calls_unencodable_step).result(timeout=10)
    assert caught.startswith("caught: the result of the step cannot be serialized")


def test_unknown_ids(engine):
    with pytest.raises(WorkflowNotFound, match="nope"):
        engine.retrieve_workflow("nope")
    with pytest.raises(WorkflowNotFound):
        engine.list_steps("nope")
    with pytest.raises(WorkflowNotFound):
        engine.cancel_workflow("nope")
    with pytest.raises(WorkflowNotFound):
        engine.resume_workflow("nope")
    with pytest.raises(WorkflowNotFound):
        engine.fork_workflow("nope", 1)


@step
def double(x: int) -> int:
    return 2 * x


def test_steps_outside_workflows_are_plain_calls():
    assert double(2) == 4
    with pytest.raises(NotInWorkflow):
        workflow_id()


def test_list_workflows_filters(engine):
    ids = [engine.start_workflow(two_steps, i).workflow_id for i in range(3)]
    for wid in ids:
        engine.retrieve_workflow(wid).result(timeout=10)
    name = two_steps.__durable_workflow__.name
    listed = engine.list_workflows(name=name, status="SUCCESS", limit=2)
    assert len(listed) == 2
    oldest = engine.list_workflows(name=name, newest_first=False, limit=None)
    assert set(ids) <= {w.workflow_id for w in oldest}
    assert [w.created_at for w in oldest] == sorted(w.created_at for w in oldest)
    newest = engine.list_workflows(name=name, limit=None)
    assert [w.workflow_id for w in newest] == [w.workflow_id for w in reversed(oldest)]
    assert engine.list_workflows(status=["ERROR"], name=name) == []


def test_two_engines_in_one_process(database_url, tmp_path, engine):
    other_url = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    with Engine(other_url, executor_id="second") as other:
        a = engine.start_workflow(two_steps, 1)
        b = other.start_workflow(two_steps, 10)
        assert a.result(timeout=10) == 3 and b.result(timeout=10) == 12
        with pytest.raises(WorkflowNotFound):
            other.retrieve_workflow(a.workflow_id)


def test_application_version_is_a_stable_digest(engine, database_url):
    again = Engine(database_url, executor_id="x")
    again.launch()
    try:
        assert again.application_version == engine.application_version
        assert len(engine.application_version) == 16
    finally:
        again.shutdown()


def test_workflow_and_step_decorators_reject_bad_settings():
    with pytest.raises(DurableError):

        @step(retries=-1)
        def bad() -> None: ...

    with pytest.raises(TypeError):
        step("positional")


@workflow
def _created_flag_flow(n: int) -> int:
    return n + 1


def test_a_start_handle_says_whether_it_created_the_workflow(engine):
    """The workflow ID is an idempotency key; the handle tells the caller which case it was
    (an HTTP endpoint answers 201 or 200 from it)."""
    from durable_core import Client, Queue

    first = engine.start_workflow(_created_flag_flow, 1, workflow_id="made-1")
    again = engine.start_workflow(_created_flag_flow, 1, workflow_id="made-1")
    assert (first.created, again.created) == (True, False)
    assert first.result(timeout=30) == again.result(timeout=30) == 2
    assert engine.retrieve_workflow("made-1").created is None

    queue = Queue("created_flag_queue")
    assert queue.enqueue(_created_flag_flow, 2, workflow_id="made-2").created is True
    assert queue.enqueue(_created_flag_flow, 2, workflow_id="made-2").created is False
    with Client(engine.database_url) as client:
        name = "tests.core.test_workflows._created_flag_flow"
        assert client.enqueue("created_flag_queue", name, 3, workflow_id="made-3").created
        assert not client.enqueue("created_flag_queue", name, 3, workflow_id="made-3").created
