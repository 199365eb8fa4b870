"""OpenTelemetry spans for workflows and steps, and the trace context carried through the
database: a workflow's span joins the trace of the code that started or enqueued it, however
and wherever it runs (background thread, dequeue, recovery)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from durable_core import Client, Queue, step, workflow
from durable_core.serialization import encode_arguments
from durable_core.store import WorkflowRow, now_ms


def NAME(fn) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


traced_queue = Queue("tests-observability")


@step
def fetch(n: int) -> int:
    return n * 2


@step
def explode(n: int) -> int:
    raise ValueError(f"bad {n}")


@workflow
def two_steps(n: int) -> int:
    value = fetch(n)
    try:
        explode(value)
    except ValueError:
        pass
    return value


@workflow
def failing(n: int) -> int:
    fetch(n)
    return explode(n)


@step
async def async_fetch(n: int) -> int:
    return n + 1


@workflow
async def async_two_steps(n: int) -> int:
    a, b = await asyncio.gather(async_fetch(n), async_fetch(n + 10))
    return a + b


def by_name(exporter, name: str) -> list:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def only(exporter, name: str):
    """The one finished span of that name; waits a little, because a workflow's span ends
    just after its outcome is committed (which is what ``result()`` waits for)."""
    deadline = time.monotonic() + 5
    while not (found := by_name(exporter, name)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


def test_workflow_and_step_spans(engine, spans):
    tracer = spans.provider.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        handle = engine.start_workflow(two_steps, 5)
    assert handle.result(timeout=10) == 10

    wf = only(spans, f"workflow {NAME(two_steps)}")
    ok = only(spans, f"step {NAME(fetch)}")
    bad = only(spans, f"step {NAME(explode)}")
    assert wf.attributes["durable.workflow.id"] == handle.workflow_id
    assert wf.attributes["durable.workflow.name"] == NAME(two_steps)
    assert wf.attributes["durable.workflow.status"] == "SUCCESS"
    assert wf.attributes["durable.executor.id"] == engine.executor_id
    # The background run is a child of the caller's span, in the caller's trace.
    assert wf.context.trace_id == request.get_span_context().trace_id
    assert wf.parent.span_id == request.get_span_context().span_id
    for span, step_id in ((ok, 1), (bad, 2)):
        assert span.parent.span_id == wf.context.span_id
        assert span.context.trace_id == wf.context.trace_id
        assert span.attributes["durable.workflow.id"] == handle.workflow_id
        assert span.attributes["durable.step.id"] == step_id
    assert ok.attributes["durable.step.name"] == NAME(fetch)
    assert ok.attributes["durable.step.status"] == "SUCCESS"
    assert ok.status.is_ok
    assert bad.attributes["durable.step.status"] == "ERROR"
    assert not bad.status.is_ok and "ValueError: bad 10" in bad.status.description
    assert any(e.name == "exception" for e in bad.events)


def test_failed_workflow_span_has_error_status(engine, spans):
    handle = engine.start_workflow(failing, 3)
    with pytest.raises(ValueError):
        handle.result(timeout=10)
    wf = only(spans, f"workflow {NAME(failing)}")
    assert wf.attributes["durable.workflow.status"] == "ERROR"
    assert "ValueError: bad 3" in wf.status.description
    assert wf.parent is None  # started outside any span: a trace of its own


def test_replayed_steps_get_no_span(engine, spans):
    handle = engine.start_workflow(two_steps, 1)
    handle.result(timeout=10)
    only(spans, f"workflow {NAME(two_steps)}")  # its span ends just after result() returns
    spans.clear()
    fork = engine.fork_workflow(handle.workflow_id, 2)
    assert fork.result(timeout=10) == 2
    assert by_name(spans, f"step {NAME(fetch)}") == []  # step 1 replayed from the record
    assert len(by_name(spans, f"step {NAME(explode)}")) == 1
    wf = only(spans, f"workflow {NAME(two_steps)}")
    assert wf.attributes["durable.workflow.replayed_steps"] == 1


def test_async_steps_nest_under_the_workflow(engine, spans):
    handle = engine.start_workflow(async_two_steps, 1)
    assert handle.result(timeout=10) == 2 + 12
    wf = only(spans, f"workflow {NAME(async_two_steps)}")
    steps = by_name(spans, f"step {NAME(async_fetch)}")
    assert sorted(s.attributes["durable.step.id"] for s in steps) == [1, 2]
    assert all(s.parent.span_id == wf.context.span_id for s in steps)


def test_enqueued_workflow_joins_the_enqueuers_trace(engine, database_url, spans):
    """Enqueued by a Client (another process in real life): the trace context travels in the
    workflow's row, and the worker's span is a child of, and linked to, the enqueuer's span."""
    tracer = spans.provider.get_tracer("test")
    client = Client(database_url)
    try:
        with tracer.start_as_current_span("enqueue") as enqueuer:
            handle = client.enqueue(traced_queue.name, NAME(two_steps), 4)
        assert handle.result(timeout=15) == 8
    finally:
        client.close()
    row = engine.store.get_workflow(handle.workflow_id)
    carrier = json.loads(row.trace_context)
    span_ctx = enqueuer.get_span_context()
    assert carrier["traceparent"].startswith(
        f"00-{span_ctx.trace_id:032x}-{span_ctx.span_id:016x}-"
    )
    wf = only(spans, f"workflow {NAME(two_steps)}")
    assert wf.attributes["durable.workflow.queue"] == traced_queue.name
    assert wf.context.trace_id == span_ctx.trace_id
    assert wf.parent.span_id == span_ctx.span_id
    assert [link.context.span_id for link in wf.links] == [span_ctx.span_id]


def test_queue_enqueue_in_process_carries_the_trace(engine, spans):
    tracer = spans.provider.get_tracer("test")
    with tracer.start_as_current_span("enqueue") as enqueuer:
        handle = traced_queue.enqueue(two_steps, 2)
    assert handle.result(timeout=15) == 4
    wf = only(spans, f"workflow {NAME(two_steps)}")
    assert wf.parent.span_id == enqueuer.get_span_context().span_id


def test_recovered_workflow_joins_the_stored_trace(engine, spans):
    """A workflow left PENDING by a dead executor, with one step done: its recovered execution
    is a new span in the original trace, and only the remaining step runs."""
    tracer = spans.provider.get_tracer("test")
    with tracer.start_as_current_span("original request") as original:
        from durable_core.observability import current_trace_context

        stored = current_trace_context()
    wid = f"recover-{uuid.uuid4().hex[:8]}"
    t = now_ms()
    engine.store.insert_workflow(
        WorkflowRow(
            workflow_id=wid,
            name=NAME(two_steps),
            status="PENDING",
            inputs=encode_arguments(engine.serializer, NAME(two_steps), (6,), {}),
            executor_id="dead-executor",
            run_token="old-token",
            application_version=engine.application_version,
            created_at=t,
            updated_at=t,
            started_at=t,
            trace_context=stored,
        )
    )
    engine.store.record_step(
        wid, "old-token", 1, NAME(fetch), engine.serializer.dumps(12), None, None, t
    )
    (handle,) = engine.recover_pending("dead-executor")
    assert handle.result(timeout=10) == 12
    wf = only(spans, f"workflow {NAME(two_steps)}")
    assert wf.attributes["durable.workflow.recovery_attempts"] == 1
    assert wf.context.trace_id == original.get_span_context().trace_id
    assert wf.parent.span_id == original.get_span_context().span_id
    assert by_name(spans, f"step {NAME(fetch)}") == []
    assert only(spans, f"step {NAME(explode)}").parent.span_id == wf.context.span_id


def test_child_workflow_span_nests_under_the_parent(engine, spans):
    handle = engine.start_workflow(parent_of_child, 3)
    assert handle.result(timeout=10) == 6
    parent = only(spans, f"workflow {NAME(parent_of_child)}")
    child = only(spans, f"workflow {NAME(two_steps)}")
    assert child.context.trace_id == parent.context.trace_id
    assert child.parent.span_id == parent.context.span_id
    assert child.attributes["durable.workflow.parent_id"] == handle.workflow_id


@workflow
def parent_of_child(n: int) -> int:
    return two_steps(n)
