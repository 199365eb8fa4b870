"""Spans for sleep, recv, send, events, streams and enqueue, children of the workflow's span
(SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid

from durable_core import (
    Queue,
    close_stream,
    get_event,
    recv,
    send,
    set_event,
    sleep,
    workflow,
    write_stream,
)
from tests.waiting import wait_for

ops_queue = Queue(f"tests-operation-spans-{uuid.uuid4().hex[:6]}")


@workflow
def child() -> str:
    return "child"


@workflow
def chatty(peer: str) -> str:
    sleep(0.01)
    set_event("stage", "one")
    write_stream("out", 1)
    close_stream("out")
    send(peer, "hello", topic="t")
    ops_queue.enqueue(child)
    return recv(topic="t", timeout=5)


@workflow
def listener() -> str:
    return recv(topic="t", timeout=10)


def test_each_operation_has_a_span_under_its_workflow(engine, spans):
    peer = engine.start_workflow(listener)
    handle = engine.start_workflow(chatty, peer.workflow_id)
    assert peer.result(timeout=20) == "hello"
    engine.send(handle.workflow_id, "back", topic="t")
    assert handle.result(timeout=20) == "back"
    assert get_event(handle.workflow_id, "stage", timeout=5) == "one"

    # result() returns once the outcome is stored; the workflow's span ends just after.
    def workflow_spans() -> list:
        return [
            s
            for s in spans.get_finished_spans()
            if s.name.startswith("workflow ") and s.name.endswith("chatty")
        ]

    wait_for(workflow_spans, 10, "the workflow's span to end")
    finished = spans.get_finished_spans()
    [wf] = [s for s in finished if s.name.startswith("workflow ") and s.name.endswith("chatty")]
    mine = [s for s in finished if s.attributes.get("durable.workflow.id") == handle.workflow_id]
    names = {s.name for s in mine if s.name.startswith("durable.")}
    assert names >= {
        "durable.sleep",
        "durable.set_event",
        "durable.write_stream",
        "durable.close_stream",
        "durable.send",
        "durable.enqueue",
        "durable.recv",
    }, names
    for s in mine:
        if s.name.startswith("durable.") and s.context.trace_id == wf.context.trace_id:
            assert s.parent is not None
    [snd] = [s for s in mine if s.name == "durable.send"]
    assert snd.attributes["durable.destination_id"] == peer.workflow_id
    assert snd.attributes["durable.topic"] == "t"
    assert snd.attributes["durable.operation.status"] == "SUCCESS"
    [enq] = [s for s in mine if s.name == "durable.enqueue"]
    assert enq.attributes["durable.queue"] == ops_queue.name
    # Outside a workflow: get_event has a span of its own, with the target's ID.
    assert any(
        s.name == "durable.get_event"
        and s.attributes.get("durable.target_id") == handle.workflow_id
        for s in finished
    )


@workflow
def streamer(n: int) -> int:
    for i in range(n):
        write_stream("numbers", i)
    close_stream("numbers")
    return n


def test_read_stream_has_a_span_with_what_it_read(engine, spans):
    handle = engine.start_workflow(streamer, 3)
    assert handle.result(timeout=20) == 3
    assert list(engine.read_stream(handle.workflow_id, "numbers")) == [0, 1, 2]
    # A reader that stops early (after one value, from position 1) closes its span too.
    reader = iter(engine.read_stream(handle.workflow_id, "numbers", after=1))
    assert next(reader) == 1
    reader.close()  # type: ignore[attr-defined]
    reads = [
        s
        for s in spans.get_finished_spans()
        if s.name == "durable.read_stream"
        and s.attributes.get("durable.target_id") == handle.workflow_id
    ]
    assert len(reads) == 2
    whole, partial = sorted(reads, key=lambda s: s.start_time)
    assert whole.attributes["durable.stream_key"] == "numbers"
    assert whole.attributes["durable.stream.values_read"] == 3
    assert whole.attributes["durable.operation.status"] == "SUCCESS"
    assert partial.attributes["durable.after"] == 1
    assert partial.attributes["durable.stream.values_read"] == 1
    assert partial.attributes["durable.operation.status"] == "CLOSED"
