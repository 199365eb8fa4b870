"""Durable sleep, messages, events and streams; waits that wake on signals."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from durable_core import (
    close_stream,
    get_event,
    read_stream,
    recv,
    recv_async,
    send,
    set_event,
    sleep,
    sleep_async,
    workflow,
    write_stream,
)
from durable_core.errors import DurableError, NotInWorkflow, WorkflowNotFound


@workflow
def sleeper(seconds: float) -> float:
    start = time.time()
    sleep(seconds)
    return time.time() - start


@workflow
async def async_sleeper(seconds: float) -> float:
    start = time.time()
    await sleep_async(seconds)
    return time.time() - start


@workflow
def receiver(count: int, topic: str | None, timeout: float) -> list:
    return [recv(topic, timeout=timeout) for _ in range(count)]


@workflow
def receive_then_time_out(topic: str) -> list:
    return [recv(topic, timeout=10), recv(topic, timeout=0.3)]


@workflow
async def async_receiver(topic: str) -> object:
    return await recv_async(topic, timeout=10)


@workflow
def publisher(values: list) -> str:
    for i, value in enumerate(values):
        set_event(f"k{i}", value)
    set_event("done", True)
    return "published"


@workflow
def streamer(n: int) -> int:
    for i in range(n):
        write_stream("tokens", f"t{i}")
    close_stream("tokens")
    write_stream("other", "x")
    return n


@workflow
def streamer_no_close(n: int) -> int:
    for i in range(n):
        write_stream("tokens", i)
    return n


@workflow
def pinger(target: str) -> object:
    send(target, "ping", topic="t")
    send(target, "ping2", topic="t")
    return get_event(target, "ack", timeout=10)


@workflow
def ponger() -> list:
    got = [recv("t", timeout=10), recv("t", timeout=10)]
    set_event("ack", got)
    return got


def test_sleep_records_wake_time(engine):
    handle = engine.start_workflow(sleeper, 0.2)
    assert 0.2 <= handle.result(timeout=10) < 5
    [step] = engine.list_steps(handle.workflow_id)
    assert step.name == "durable.sleep" and step.step_id == 1
    assert isinstance(step.result, float) and step.result > time.time() - 60


def test_long_sleep_gives_back_its_thread(engine):
    # The fixture's suspend_threshold is 0.5 s: this sleep parks off-thread and wakes on time.
    handles = [engine.start_workflow(sleeper, 1.0) for _ in range(20)]
    time.sleep(0.3)
    assert len(engine.parking.parked) == 20
    busy = [t for t in threading.enumerate() if t.name.startswith("durable-workflow")]
    assert len(busy) <= engine.max_workers
    for handle in handles:
        handle.result(timeout=10)
        status = handle.status()
        # Measured from the record: code before the sleep re-runs on replay after parking.
        assert 1.0 <= (status.finished_at - status.created_at).total_seconds() < 4


async def test_async_sleep(engine):
    handle = await engine.start_workflow_async(async_sleeper, 0.2)
    assert await handle.result_async(timeout=10) >= 0.2


def test_send_recv_in_order_exactly_once(engine):
    handle = engine.start_workflow(receiver, 3, "orders", 10)
    for i in range(3):
        engine.send(handle.workflow_id, {"n": i}, topic="orders")
    assert handle.result(timeout=10) == [{"n": 0}, {"n": 1}, {"n": 2}]
    steps = engine.list_steps(handle.workflow_id)
    assert [s.name for s in steps] == ["durable.recv"] * 3
    # Consumed messages are gone: a fork from step 1 replays nothing new.
    assert engine.store.destinations_with_messages([handle.workflow_id]) == []


def test_recv_wakes_on_send_quickly(engine):
    handle = engine.start_workflow(receiver, 1, None, 30)
    time.sleep(0.1)
    started = time.monotonic()
    send(handle.workflow_id, "hello")
    assert handle.result(timeout=10) == ["hello"]
    assert time.monotonic() - started < 1.0


def test_recv_parked_then_woken(engine):
    handle = engine.start_workflow(receiver, 1, "late", 30)
    deadline = time.monotonic() + 5
    while handle.workflow_id not in engine.parking.parked and time.monotonic() < deadline:
        time.sleep(0.02)
    assert handle.workflow_id in engine.parking.parked
    send(handle.workflow_id, "finally", topic="late")
    assert handle.result(timeout=10) == ["finally"]


def test_recv_timeout_returns_none(engine):
    handle = engine.start_workflow(receiver, 1, "nobody", 0.2)
    assert handle.result(timeout=10) == [None]


async def test_async_recv(engine):
    handle = await engine.start_workflow_async(async_receiver, "a")
    await asyncio.sleep(0.05)
    engine.send(handle.workflow_id, [1, 2], topic="a")
    assert await handle.result_async(timeout=10) == [1, 2]


def test_send_idempotency_key(engine):
    handle = engine.start_workflow(receive_then_time_out, "dup")
    engine.send(handle.workflow_id, "once", topic="dup", idempotency_key="k1")
    engine.send(handle.workflow_id, "once", topic="dup", idempotency_key="k1")
    deadline = time.monotonic() + 5
    while not engine.list_steps(handle.workflow_id) and time.monotonic() < deadline:
        time.sleep(0.01)
    # A retry after the message was received is still recognised as the same send.
    engine.send(handle.workflow_id, "once", topic="dup", idempotency_key="k1")
    assert handle.result(timeout=10) == ["once", None]


def test_workflows_talk_to_each_other(engine):
    pong = engine.start_workflow(ponger)
    ping = engine.start_workflow(pinger, pong.workflow_id)
    assert ping.result(timeout=10) == ["ping", "ping2"]
    names = [s.name for s in engine.list_steps(ping.workflow_id)]
    assert names == ["durable.send", "durable.send", "durable.get_event"]


def test_events(engine):
    handle = engine.start_workflow(publisher, ["a", {"b": 2}])
    assert engine.get_event(handle.workflow_id, "done", timeout=10) is True
    assert get_event(handle.workflow_id, "k1", timeout=1) == {"b": 2}
    assert engine.get_event(handle.workflow_id, "missing", timeout=0.1) is None
    handle.result(timeout=10)


def test_streams_end_on_close(engine):
    handle = engine.start_workflow(streamer, 5)
    assert list(engine.read_stream(handle.workflow_id, "tokens")) == [f"t{i}" for i in range(5)]
    handle.result(timeout=10)
    assert list(read_stream(handle.workflow_id, "other")) == ["x"]


def test_streams_end_when_workflow_ends(engine):
    handle = engine.start_workflow(streamer_no_close, 3)
    assert list(engine.read_stream(handle.workflow_id, "tokens")) == [0, 1, 2]


async def test_async_stream_reader(engine):
    handle = engine.start_workflow(streamer, 3)
    got = [v async for v in engine.read_stream(handle.workflow_id, "tokens")]
    assert got == ["t0", "t1", "t2"]


def test_outside_a_workflow_is_an_error(engine):
    with pytest.raises(NotInWorkflow):
        recv()
    with pytest.raises(NotInWorkflow):
        set_event("k", 1)
    with pytest.raises(NotInWorkflow):
        sleep(1)
    with pytest.raises(NotInWorkflow):
        write_stream("k", 1)


def test_bad_input(engine):
    with pytest.raises(WorkflowNotFound):
        send(f"missing-{uuid.uuid4()}", "x")
    handle = engine.start_workflow(receiver, 1, None, 0.1)
    with pytest.raises(DurableError, match="non-negative"):
        engine.get_event(handle.workflow_id, "k", timeout=-1)
    with pytest.raises(DurableError, match="non-negative"):
        engine.get_event(handle.workflow_id, "k", timeout=float("nan"))
    with pytest.raises(DurableError, match="longer than"):
        send(handle.workflow_id, "x", topic="t" * 10_000)
    with pytest.raises(DurableError, match="NUL"):
        send(handle.workflow_id, "x", topic="a\x00b")
    with pytest.raises(DurableError, match="non-negative"):
        handle.result(timeout=-5)
    # Odd but valid characters work.
    odd = "émoji 🎉 'quotes' \"double\" ; DROP TABLE x; --"
    send(handle.workflow_id, odd, topic=odd)
    waiting = engine.store.fetchone(
        "SELECT COUNT(*) FROM durable_notifications WHERE destination_id = %s AND topic = %s "
        "AND consumed_at IS NULL",
        (handle.workflow_id, odd),
    )
    assert waiting[0] == 1
    handle.result(timeout=10)


@workflow
def waits_for_event(target: str) -> object:
    return get_event(target, "late", timeout=30)


@workflow
def sets_late_event(gate: str) -> None:
    recv(gate, timeout=30)
    set_event("late", "finally")


def test_get_event_inside_a_workflow_parks_and_is_recorded(engine):
    publisher_handle = engine.start_workflow(sets_late_event, "go")
    waiter = engine.start_workflow(waits_for_event, publisher_handle.workflow_id)
    deadline = time.monotonic() + 5
    while waiter.workflow_id not in engine.parking.parked and time.monotonic() < deadline:
        time.sleep(0.02)
    assert waiter.workflow_id in engine.parking.parked  # waiting without a thread
    engine.send(publisher_handle.workflow_id, "now", topic="go")
    assert waiter.result(timeout=10) == "finally"
    assert [s.name for s in engine.list_steps(waiter.workflow_id)] == ["durable.get_event"]
