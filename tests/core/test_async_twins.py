"""The async twins of the waits and writes run the same plan as the sync calls, without
holding a thread: many async waiters finish in about one wait time, an unrelated async
workflow stays fast meanwhile, and async step retries log and call the step-boundary hook."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest

from durable_core import (
    Engine,
    close_stream_async,
    get_event,
    get_event_async,
    read_stream,
    recv_async,
    send_async,
    set_event,
    set_event_async,
    step,
    workflow,
    write_stream_async,
)

WAIT = 1.5
WAITERS = 24  # four times the default executor's six threads on two cores


@workflow
def publisher(key: str, value: str) -> None:
    set_event(key, value)


@workflow
async def event_waiter(workflow_id: str, key: str, timeout: float) -> str | None:
    return await get_event_async(workflow_id, key, timeout)


@step
async def one_step(x: int) -> int:
    return x + 1


@workflow
async def quick(x: int) -> int:
    return await one_step(x)


def test_async_get_event_waiters_hold_no_thread(engine):
    """Each waiter waits WAIT seconds for an event nobody sets. Holding a thread per wait, the
    engine loop's default executor (six threads here) runs them in four batches (6 s) and the
    unrelated workflow waits for a free thread; without, all end in about one WAIT."""
    target = engine.start_workflow(publisher, "other", "x")
    target.result(timeout=10)
    began = time.monotonic()
    handles = [
        engine.start_workflow(event_waiter, target.workflow_id, f"never-{i}", WAIT)
        for i in range(WAITERS)
    ]
    time.sleep(0.3)  # the waiters are waiting now
    quick_began = time.monotonic()
    assert engine.start_workflow(quick, 1).result(timeout=30) == 2
    quick_took = time.monotonic() - quick_began
    assert [h.result(timeout=30) for h in handles] == [None] * WAITERS
    took = time.monotonic() - began
    assert quick_took < 1.0, f"a one-step async workflow took {quick_took:.2f}s meanwhile"
    assert took < 2 * WAIT + 1.0, f"{WAITERS} waits of {WAIT}s took {took:.1f}s"


async def test_get_event_async_outside_a_workflow_holds_no_thread(engine):
    target = engine.start_workflow(publisher, "ready", "yes")
    await target.result_async(timeout=10)
    began = time.monotonic()
    values = await asyncio.gather(
        *(get_event_async(target.workflow_id, f"never-{i}", WAIT) for i in range(WAITERS)),
        get_event_async(target.workflow_id, "ready", WAIT),
    )
    took = time.monotonic() - began
    assert values == [None] * WAITERS + ["yes"]
    assert took < 2 * WAIT + 1.0, f"{WAITERS} waits of {WAIT}s took {took:.1f}s"


@workflow
async def async_writer(peer: str) -> str:
    await set_event_async("status", "writing")
    await send_async(peer, {"hello": "peer"}, topic="greetings")
    await write_stream_async("tokens", "a")
    await write_stream_async("tokens", "b")
    await close_stream_async("tokens")
    await set_event_async("status", "done")
    return "written"


@workflow
async def async_receiver() -> dict | None:
    return await recv_async("greetings", timeout=30)


def test_async_set_event_send_and_streams(engine):
    receiver = engine.start_workflow(async_receiver)
    writer = engine.start_workflow(async_writer, receiver.workflow_id)
    assert writer.result(timeout=30) == "written"
    assert receiver.result(timeout=30) == {"hello": "peer"}
    assert get_event(writer.workflow_id, "status", timeout=5) == "done"
    assert list(read_stream(writer.workflow_id, "tokens")) == ["a", "b"]
    names = [s.name for s in engine.list_steps(writer.workflow_id)]
    assert names == [
        "durable.set_event",
        "durable.send",
        "durable.write_stream",
        "durable.write_stream",
        "durable.close_stream",
        "durable.set_event",
    ]


async def test_async_stream_reader_and_result(engine):
    receiver = engine.start_workflow(async_receiver)
    writer = engine.start_workflow(async_writer, receiver.workflow_id)
    values = [v async for v in engine.read_stream(writer.workflow_id, "tokens")]
    assert values == ["a", "b"]
    assert await writer.result_async(timeout=30) == "written"
    assert await get_event_async(writer.workflow_id, "status", 5) == "done"


@workflow
async def async_event_reader(workflow_id: str) -> str | None:
    return await get_event_async(workflow_id, "status", 30)


def test_get_event_async_in_a_workflow_is_recorded(engine):
    receiver = engine.start_workflow(async_receiver)
    writer = engine.start_workflow(async_writer, receiver.workflow_id)
    reader = engine.start_workflow(async_event_reader, writer.workflow_id)
    assert reader.result(timeout=30) in ("writing", "done")
    assert [s.name for s in engine.list_steps(reader.workflow_id)] == ["durable.get_event"]


class BoundaryCounter:
    """An integration's adapter hook: called before and after each plain step body."""

    def __init__(self) -> None:
        self.calls = 0

    def step_boundary(self) -> None:
        self.calls += 1

    def enlist(self, engine: object) -> tuple[None, None]:
        return None, None  # the adapter Protocol's other hook: no transaction to join


ATTEMPTS: dict[str, int] = {}


@step(retries=3, retry_delay=0.01)
async def flaky_async(key: str) -> str:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] < 3:
        raise RuntimeError(f"attempt {ATTEMPTS[key]} fails")
    return "ok"


@workflow
async def retrying(key: str) -> str:
    return await flaky_async(key)


@pytest.fixture
def hooked_engine(database_url):
    from durable_core import set_default_engine

    counter = BoundaryCounter()
    eng = Engine(
        database_url,
        executor_id=f"test-{uuid.uuid4().hex[:8]}",
        transactions=counter,
        run_scheduler=False,
    )
    eng.launch()
    set_default_engine(eng)
    yield eng, counter
    eng.shutdown(timeout=5)
    set_default_engine(None)


def test_async_step_retries_log_and_call_the_boundary_hook(hooked_engine, caplog):
    engine, counter = hooked_engine
    key = str(uuid.uuid4())
    with caplog.at_level(logging.INFO, logger="durable_core.execution"):
        handle = engine.start_workflow(retrying, key)
        assert handle.result(timeout=30) == "ok"
    assert ATTEMPTS[key] == 3
    assert counter.calls == 2 * 3  # before and after each of the three attempts
    retries = [
        r
        for r in caplog.records
        if "retry" in r.getMessage() and handle.workflow_id in r.getMessage()
    ]
    assert len(retries) == 2, [r.getMessage() for r in caplog.records]
