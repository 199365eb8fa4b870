"""Durable sleep, messages (send/recv), events (set_event/get_event) and streams.

Each call made inside a workflow takes the next step ID and is recorded, so a replay returns
what the first execution saw. Waits wake on signals (in-process, or PostgreSQL NOTIFY) with
polling only as a safety net; a long wait in a sync workflow gives back its thread.

Each behaviour is one plan (``drivers.py``); the sync function and its ``_async`` twin are
its two drivers, so the async twins wait without holding a thread.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from . import context as ctxmod
from . import observability, validation
from .context import Aborted, WorkflowContext, engine_for_call
from .drivers import (
    Call,
    Emit,
    Pause,
    Plan,
    Wait,
    iterate_async,
    iterate_sync,
    run_async,
    run_sync,
    signal_wait,
)
from .errors import WorkflowNotFound
from .execution import checkpoint
from .runtime import SystemDatabase, in_callers_transaction
from .status import TERMINAL
from .store import OwnershipLost, StepRow

MAX_KEY_BYTES = validation.MAX_ID_BYTES
validate_key = validation.key  # topics, event/stream keys, idempotency keys


def _wait_seconds(timeout: float | None) -> float:
    timeout = validation.wait_seconds(timeout)
    return float("inf") if timeout is None else timeout


def _loads(ctx: WorkflowContext, row: StepRow) -> Any:
    return None if row.output is None else ctx.engine.serializer.loads(row.output)


# -- sleep ---------------------------------------------------------------------------------------


def _sleep_wake_time(ctx: WorkflowContext, step_id: int, seconds: float) -> float:
    recorded = ctx.replayed(step_id, "durable.sleep")
    if recorded is not None:
        return float(ctx.engine.serializer.loads(recorded.output or "0"))
    ctx.check_live()
    wake_at = ctx.engine.clock.time() + seconds
    # The wake-up time is recorded before sleeping: a recovered workflow keeps it.
    checkpoint(
        ctx,
        step_id,
        "durable.sleep",
        ctx.engine.serializer.dumps(wake_at),
        None,
        None,
        ctx.engine.clock.now_ms(),
    )
    return wake_at


def _sleep(what: str, seconds: float) -> Plan[None]:
    ctx = ctxmod.require(what)
    seconds = validation.delay_seconds(seconds, "sleep seconds") or 0.0
    step_id = ctx.next_step_id()
    wake_at = yield Call(_sleep_wake_time, (ctx, step_id, seconds))
    if ctx.replay_only:  # a recorded sleep; what follows it tells whether it had ended
        return
    yield Pause(ctx, wake_at, may_park=True)


def sleep(seconds: float) -> None:
    """Durable sleep: a workflow recovered after its wake-up time does not sleep again."""
    with observability.operation_span("sleep", sleep_seconds=seconds):
        run_sync(_sleep("sleep()", seconds))


async def sleep_async(seconds: float) -> None:
    """``sleep()`` for async workflows."""
    with observability.operation_span("sleep", sleep_seconds=seconds):
        await run_async(_sleep("sleep_async()", seconds))


# -- messages --------------------------------------------------------------------------------------


def send_outside(
    engine_or_client: SystemDatabase,
    workflow_id: str,
    message: Any,
    topic: str | None,
    idempotency_key: str | None,
) -> None:
    validation.workflow_id(workflow_id)
    topic = validate_key(topic, "topic", allow_none=True)
    payload = engine_or_client.serializer.dumps(message)
    if idempotency_key is not None:
        idempotency_key = validate_key(idempotency_key, "idempotency_key")
    # Inside the caller's atomic() the message joins that transaction, as a start there does:
    # it reaches a workflow started in it, and is delivered only if it commits.
    with in_callers_transaction(engine_or_client):
        sent = engine_or_client.store.send_message(workflow_id, topic, payload, idempotency_key)
    if not sent:
        raise WorkflowNotFound(workflow_id)


def _send_in_workflow(
    ctx: WorkflowContext, workflow_id: str, message: Any, topic: str
) -> Plan[None]:
    step_id = ctx.next_step_id()
    if ctx.replayed(step_id, "durable.send") is not None:
        return
    ctx.check_live()
    payload = ctx.engine.serializer.dumps(message)
    step = (
        ctx.workflow_id,
        ctx.run_token,
        step_id,
        "durable.send",
        None,
        None,
        None,
        ctx.engine.clock.now_ms(),
    )
    send_message = functools.partial(ctx.engine.store.send_message, step=step)
    try:
        sent = yield Call(
            send_message, (workflow_id, topic, payload, f"{ctx.workflow_id}:{step_id}")
        )
    except OwnershipLost:
        raise Aborted(ctx.workflow_id) from None
    if not sent:
        raise WorkflowNotFound(workflow_id)


def _send(
    workflow_id: str, message: Any, topic: str | None, idempotency_key: str | None
) -> Plan[None]:
    topic = validate_key(topic, "topic", allow_none=True)
    ctx = ctxmod.current()
    if ctx is not None:
        yield from _send_in_workflow(ctx, workflow_id, message, topic)
        return
    owner = engine_for_call()
    yield Call(send_outside, (owner, workflow_id, message, topic, idempotency_key))


def send(
    workflow_id: str, message: Any, topic: str | None = None, idempotency_key: str | None = None
) -> None:
    """Send a durable message to a workflow: delivered exactly once, in order per topic.

    Inside a workflow the send is a step (not repeated on replay); outside, an
    ``idempotency_key`` makes a retried send deliver once."""
    with observability.operation_span("send", destination_id=workflow_id, topic=topic):
        run_sync(_send(workflow_id, message, topic, idempotency_key))


async def send_async(
    workflow_id: str, message: Any, topic: str | None = None, idempotency_key: str | None = None
) -> None:
    """``send()`` from async code."""
    with observability.operation_span("send", destination_id=workflow_id, topic=topic):
        await run_async(_send(workflow_id, message, topic, idempotency_key))


#: A recv that had to wait records its deadline and what it waits for under the negative of
#: its step ID; a get_event records the same under its own name, as JSON. (Earlier releases
#: wrote the bare deadline under ``durable.recv.deadline`` for both: still read. They cannot
#: read these marks: the README says how to upgrade a fleet with waiting workflows.)
DEADLINE_MARK = "durable.recv.deadline"
EVENT_DEADLINE_MARK = "durable.get_event.deadline"
WAIT_MARKS = (DEADLINE_MARK, EVENT_DEADLINE_MARK)


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitMark:
    """What a waiting recv or get_event recorded: its kind, deadline (fleet epoch seconds)
    and target (the topic; the other workflow and the event key). ``kind`` is None for a mark
    written before the kind was recorded (a recv or a get_event: nothing says which)."""

    kind: str | None
    deadline: float | None
    topic: str | None = None
    workflow_id: str | None = None
    key: str | None = None

    def describe(self) -> str:
        """In words, for the dashboard and the admin."""
        if self.kind == "recv":
            topic = f"topic {self.topic!r}" if self.topic else "the default topic"
            return f"a message on {topic}"
        if self.kind == "get_event":
            return f"event {self.key!r} of workflow {self.workflow_id}"
        return "a message or an event"


def read_wait_mark(text: str | None, serializer: Any = None) -> WaitMark:
    """A stored wait mark's content. New marks are JSON whatever the engine's serializer (they
    hold the library's own data, so any reader can show them); an old one is the deadline
    alone, in the serializer's encoding (JSON by default)."""
    value: Any = None
    try:
        value = json.loads(text) if text is not None else None
    except ValueError:
        try:
            value = serializer.loads(text) if serializer is not None else None
        except Exception:
            value = None
    if isinstance(value, dict):
        deadline = value.get("deadline")
        return WaitMark(
            kind=value.get("kind") if value.get("kind") in ("recv", "get_event") else None,
            deadline=float(deadline) if isinstance(deadline, int | float) else None,
            topic=value.get("topic"),
            workflow_id=value.get("workflow_id"),
            key=value.get("key"),
        )
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return WaitMark(kind=None, deadline=float(value) if number else None)


def _deadline(ctx: WorkflowContext, step_id: int, seconds: float, name: str) -> float:
    # A wait that had to wait recorded its deadline under the negative of its step ID, so a
    # replay (after parking or a crash) keeps the original deadline. A get_event that began
    # waiting before its mark had a name of its own finds a recv's name there.
    mark = ctx.recorded.get(-step_id)
    if mark is not None and mark.name not in WAIT_MARKS:
        mark = ctx.replayed(-step_id, name)  # raises NonDeterministicWorkflow
    if mark is not None:
        recorded = read_wait_mark(mark.output, ctx.engine.serializer).deadline
        return recorded if recorded is not None else 0.0
    return ctx.engine.clock.time() + seconds


def _wait_mark(
    ctx: WorkflowContext, step_id: int, deadline: float, name: str, target: dict[str, str]
) -> tuple[str, str] | None:
    """The mark a recv or get_event with a finite timeout records before its first wait
    (once per call, not per poll): its deadline and what it waits for (``target``), as JSON;
    None when there is none to record."""
    if deadline == float("inf") or -step_id in ctx.recorded:
        return None
    kind = "recv" if name == DEADLINE_MARK else "get_event"
    return name, json.dumps({"kind": kind, "deadline": deadline, **target}, ensure_ascii=False)


def _marked(ctx: WorkflowContext, step_id: int, mark: tuple[str, str]) -> None:
    name, output = mark
    ctx.recorded[-step_id] = StepRow(-step_id, name, output, None, None, None, None)


def _record_deadline(
    ctx: WorkflowContext, step_id: int, deadline: float, name: str, target: dict[str, str]
) -> None:
    mark = _wait_mark(ctx, step_id, deadline, name, target)
    if mark is not None:
        checkpoint(ctx, -step_id, mark[0], mark[1], None, None, ctx.engine.clock.now_ms())
        _marked(ctx, step_id, mark)


def _recv_try(
    ctx: WorkflowContext, step_id: int, topic: str, deadline: float, started: int
) -> tuple[bool, Any]:
    engine = ctx.engine
    # Recorded by the consume itself when it finds nothing: no statement of its own.
    mark = None
    if engine.clock.time() < deadline:
        mark = _wait_mark(ctx, step_id, deadline, DEADLINE_MARK, {"topic": topic})
    try:
        found, payload = engine.store.consume_message(
            ctx.workflow_id, ctx.run_token, step_id, topic, started, mark
        )
    except OwnershipLost:
        raise Aborted(ctx.workflow_id) from None
    if found and payload is not None:
        return True, engine.serializer.loads(payload)
    if mark is not None:
        _marked(ctx, step_id, mark)
    if ctx.engine.clock.time() >= deadline:
        checkpoint(ctx, step_id, "durable.recv", None, None, None, started)
        return True, None
    _record_deadline(ctx, step_id, deadline, DEADLINE_MARK, {"topic": topic})
    return False, None


def _recv(what: str, topic: str | None, timeout: float | None) -> Plan[Any]:
    ctx = ctxmod.require(what)
    topic = validate_key(topic, "topic", allow_none=True)
    seconds = _wait_seconds(timeout)
    step_id = ctx.next_step_id()
    recorded = ctx.replayed(step_id, "durable.recv")
    deadline = _deadline(ctx, step_id, seconds, DEADLINE_MARK)
    if recorded is not None:
        return _loads(ctx, recorded)
    engine, key, started = ctx.engine, ("m", ctx.workflow_id), ctx.engine.clock.now_ms()
    waiting_since = time.monotonic()
    while True:
        seen = engine.notifier.version(key)
        done, value = yield Call(_recv_try, (ctx, step_id, topic, deadline, started))
        if done:
            return value
        ctx.check_live()
        wait = signal_wait(ctx, [key], [seen], deadline, waiting_since)
        if wait is not None:
            yield wait


def recv(topic: str | None = None, timeout: float | None = 60) -> Any:
    """Receive the next message on ``topic`` sent to this workflow; ``None`` on timeout."""
    with observability.operation_span("recv", topic=topic, timeout=timeout):
        return run_sync(_recv("recv()", topic, timeout))


async def recv_async(topic: str | None = None, timeout: float | None = 60) -> Any:
    """``recv()`` for async workflows: waits without holding a thread."""
    with observability.operation_span("recv", topic=topic, timeout=timeout):
        return await run_async(_recv("recv_async()", topic, timeout))


# -- events ----------------------------------------------------------------------------------------


def _set_event(what: str, key: str, value: Any) -> Plan[None]:
    ctx = ctxmod.require(what)
    key = validate_key(key, "event key")
    step_id = ctx.next_step_id()
    if ctx.replayed(step_id, "durable.set_event") is not None:
        return
    ctx.check_live()
    payload = ctx.engine.serializer.dumps(value)
    args = (ctx.workflow_id, ctx.run_token, step_id, key, payload, ctx.engine.clock.now_ms())
    try:
        yield Call(ctx.engine.store.set_event, args)
    except OwnershipLost:
        raise Aborted(ctx.workflow_id) from None


def set_event(key: str, value: Any) -> None:
    """Publish ``key = value`` from this workflow for ``get_event`` readers."""
    with observability.operation_span("set_event", event_key=key):
        run_sync(_set_event("set_event()", key, value))


async def set_event_async(key: str, value: Any) -> None:
    """``set_event()`` for async workflows."""
    with observability.operation_span("set_event", event_key=key):
        await run_async(_set_event("set_event_async()", key, value))


def _event_outside(owner: SystemDatabase, workflow_id: str, key: str, seconds: float) -> Plan[Any]:
    """Outside a workflow: wait for the event without recording anything."""
    deadline = time.monotonic() + seconds
    keys = (("e", workflow_id), ("w", workflow_id))
    while True:
        seen = tuple(owner.notifier.version(k) for k in keys)
        found, payload = yield Call(owner.store.get_event, (workflow_id, key))
        if found:
            return owner.serializer.loads(payload)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        yield Wait(owner.notifier, keys, seen, min(remaining, owner.poll_interval))


def _event_in_workflow(
    ctx: WorkflowContext, workflow_id: str, key: str, seconds: float
) -> Plan[Any]:
    """Inside a workflow: the value read (or None at the deadline) is recorded as a step."""
    step_id = ctx.next_step_id()
    recorded = ctx.replayed(step_id, "durable.get_event")
    if recorded is not None:
        return _loads(ctx, recorded)
    ctx.check_live()
    engine, started = ctx.engine, ctx.engine.clock.now_ms()
    deadline = _deadline(ctx, step_id, seconds, EVENT_DEADLINE_MARK)
    target = {"workflow_id": workflow_id, "key": key}
    keys = [("e", workflow_id), ("w", workflow_id)]
    waiting_since = time.monotonic()
    while True:
        seen = [engine.notifier.version(k) for k in keys]
        found, payload = yield Call(engine.store.get_event, (workflow_id, key))
        if found or engine.clock.time() >= deadline:
            output = payload if found else None
            yield Call(checkpoint, (ctx, step_id, "durable.get_event", output, None, None, started))
            return engine.serializer.loads(payload) if found and payload is not None else None
        ctx.check_live()
        yield Call(_record_deadline, (ctx, step_id, deadline, EVENT_DEADLINE_MARK, target))
        wait = signal_wait(ctx, keys, seen, deadline, waiting_since)
        if wait is not None:
            yield wait


def get_event_plan(
    owner: SystemDatabase, workflow_id: str, key: str, timeout: float | None
) -> Plan[Any]:
    """``get_event`` from outside a workflow on ``owner`` (an Engine or a Client)."""
    validation.workflow_id(workflow_id)
    key = validate_key(key, "event key")
    return _event_outside(owner, workflow_id, key, _wait_seconds(timeout))


def get_event_outside(
    owner: SystemDatabase, workflow_id: str, key: str, timeout: float | None
) -> Any:
    return run_sync(get_event_plan(owner, workflow_id, key, timeout))


def _get_event(workflow_id: str, key: str, timeout: float | None) -> Plan[Any]:
    key = validate_key(key, "event key")
    seconds = _wait_seconds(timeout)
    ctx = ctxmod.current()
    if ctx is None:
        return (yield from _event_outside(engine_for_call(), workflow_id, key, seconds))
    return (yield from _event_in_workflow(ctx, workflow_id, key, seconds))


def get_event(workflow_id: str, key: str, timeout: float | None = 60) -> Any:
    """Wait up to ``timeout`` seconds for workflow ``workflow_id`` to set ``key``; ``None`` if
    it does not. Inside a workflow the value read is recorded as a step."""
    with observability.operation_span("get_event", target_id=workflow_id, event_key=key):
        return run_sync(_get_event(workflow_id, key, timeout))


async def get_event_async(workflow_id: str, key: str, timeout: float | None = 60) -> Any:
    """``get_event()`` from async code: waits without holding a thread."""
    with observability.operation_span("get_event", target_id=workflow_id, event_key=key):
        return await run_async(_get_event(workflow_id, key, timeout))


# -- streams ---------------------------------------------------------------------------------------


def _write(what: str, key: str, value: Any, is_close: bool) -> Plan[None]:
    running = ctxmod.running_step() if not is_close else None
    if running is not None:
        return (yield from _append_in_step(*running, key, value))
    ctx = ctxmod.require(what)
    key = validate_key(key, "stream key")
    name = "durable.close_stream" if is_close else "durable.write_stream"
    step_id = ctx.next_step_id()
    if ctx.replayed(step_id, name) is not None:
        return
    ctx.check_live()
    payload = None if is_close else ctx.engine.serializer.dumps(value)
    args = (
        ctx.workflow_id,
        ctx.run_token,
        step_id,
        key,
        payload,
        is_close,
        ctx.engine.clock.now_ms(),
    )
    try:
        yield Call(ctx.engine.store.write_stream, args)
    except OwnershipLost:
        raise Aborted(ctx.workflow_id) from None


def _append_in_step(ctx: WorkflowContext, step_id: int, key: str, value: Any) -> Plan[None]:
    """A value appended by a running step body: written at once, without a step row of its
    own, tagged with the enclosing step's ID (so ``fork_workflow`` copies it with that step)
    and only while this execution owns the workflow (a superseded execution stops here).
    Not a checkpoint: an attempt of the step that does not finish leaves its values in the
    stream, and the next attempt appends its own after them."""
    key = validate_key(key, "stream key")
    payload = ctx.engine.serializer.dumps(value)
    args = (ctx.workflow_id, ctx.run_token, step_id, key, payload)
    try:
        yield Call(ctx.engine.store.append_stream, args)
    except OwnershipLost:
        raise Aborted(ctx.workflow_id) from None


def write_stream(key: str, value: Any) -> None:
    """Append ``value`` to this workflow's stream ``key`` (tokens, progress).

    In the workflow body it is a checkpoint (a replay does not write it again). In a step's
    body it is written at once, so readers see it while the step runs; it is tagged with the
    step and is not replayed, and a retried or crashed attempt's values stay in the stream
    before the next attempt's (see docs/agents.md, "Live tokens")."""
    with observability.operation_span("write_stream", stream_key=key):
        run_sync(_write("write_stream()", key, value, False))


def close_stream(key: str) -> None:
    """Mark stream ``key`` finished: readers stop after the values before it."""
    with observability.operation_span("close_stream", stream_key=key):
        run_sync(_write("close_stream()", key, None, True))


async def write_stream_async(key: str, value: Any) -> None:
    """``write_stream()`` for async workflows."""
    with observability.operation_span("write_stream", stream_key=key):
        await run_async(_write("write_stream_async()", key, value, False))


async def close_stream_async(key: str) -> None:
    """``close_stream()`` for async workflows."""
    with observability.operation_span("close_stream", stream_key=key):
        await run_async(_write("close_stream_async()", key, None, True))


class StreamReader:
    """Iterates a workflow's stream in order, sync or async; ends when the stream is closed or
    the workflow has ended and every value written before that has been read.

    ``after`` skips the first ``after`` values (the n-th value written has position n), so a
    reader that reconnects (an SSE client's ``Last-Event-ID``) continues where it stopped."""

    def __init__(self, owner: SystemDatabase, workflow_id: str, key: str, after: int = 0):
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ValueError(f"after must be a position >= 0 in the stream, not {after!r}")
        self._owner = owner
        self.workflow_id = validation.workflow_id(workflow_id)
        self.key = validate_key(key, "stream key")
        self.after = after

    def _batch(self, after: int) -> tuple[list[tuple[Any, ...]], bool, tuple[int, ...]]:
        notifier = self._owner.notifier
        seen = (
            notifier.version(("s", self.workflow_id)),
            notifier.version(("w", self.workflow_id)),
        )
        outcome = self._owner.store.get_outcome(self.workflow_id)
        if outcome is None:
            raise WorkflowNotFound(self.workflow_id)
        rows = self._owner.store.read_stream(self.workflow_id, self.key, after)
        return rows, outcome[0] in TERMINAL, seen

    def _plan(self) -> Plan[None]:
        # Not the current span: the reader's own code runs between the values it yields.
        with observability.operation_span(
            "read_stream",
            current=False,
            target_id=self.workflow_id,
            stream_key=self.key,
            after=self.after or None,
        ) as span:
            read = 0
            try:
                after = self.after
                keys = (("s", self.workflow_id), ("w", self.workflow_id))
                while True:
                    rows, ended, seen = yield Call(self._batch, (after,))
                    for seq, value, is_close in rows:
                        if is_close:
                            return
                        after = seq
                        read += 1
                        yield Emit(self._owner.serializer.loads(value))
                    if not rows:
                        if ended:
                            return
                        yield Wait(self._owner.notifier, keys, seen, self._owner.poll_interval)
            finally:
                if span is not None:
                    span.span.set_attribute("durable.stream.values_read", read)

    def __iter__(self) -> Iterator[Any]:
        return iterate_sync(self._plan())

    def __aiter__(self) -> AsyncIterator[Any]:
        return iterate_async(self._plan())


def read_stream(workflow_id: str, key: str, after: int = 0) -> StreamReader:
    """Read the values workflow ``workflow_id`` writes to stream ``key``, in order (from
    position ``after`` on)."""
    return StreamReader(engine_for_call(), workflow_id, key, after)
