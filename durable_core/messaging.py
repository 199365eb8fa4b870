"""Durable sleep, messages (send/recv), events (set_event/get_event) and streams.

Each call made inside a workflow takes the next step ID and is recorded, so a replay returns
what the first execution saw. Waits wake on signals (in-process, or PostgreSQL NOTIFY) with
polling only as a safety net; a long wait in a sync workflow gives back its thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from . import context as ctxmod
from . import validation
from .context import Aborted, Suspend, WorkflowContext, engine_for_call
from .errors import WorkflowNotFound
from .execution import checkpoint
from .status import TERMINAL
from .store import OwnershipLost, StepRow
from .waits import wait_or_park

MAX_KEY_BYTES = validation.MAX_ID_BYTES
validate_key = validation.key  # topics, event/stream keys, idempotency keys


def _wait_seconds(timeout: float | None) -> float:
    timeout = validation.wait_seconds(timeout)
    return float("inf") if timeout is None else timeout


# -- sleep ---------------------------------------------------------------------------------------


def _sleep_wake_time(ctx: WorkflowContext, seconds: float) -> float:
    step_id = ctx.next_step_id()
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


def sleep(seconds: float) -> None:
    """Durable sleep: a workflow recovered after its wake-up time does not sleep again."""
    ctx = ctxmod.require("sleep()")
    seconds = validation.delay_seconds(seconds, "sleep seconds") or 0.0
    wake_at = _sleep_wake_time(ctx, seconds)
    if ctx.replay_only:  # a recorded sleep; what follows it tells whether it had ended
        return
    remaining = wake_at - ctx.engine.clock.time()
    if remaining <= 0:
        return
    if ctx.can_suspend and remaining > ctx.engine.suspend_threshold:
        raise Suspend(wake_at)
    if ctx.engine.clock.wait(ctx.cancel_event, remaining):
        raise Aborted(ctx.workflow_id)


async def sleep_async(seconds: float) -> None:
    ctx = ctxmod.require("sleep_async()")
    seconds = validation.delay_seconds(seconds, "sleep seconds") or 0.0
    wake_at = await asyncio.to_thread(_sleep_wake_time, ctx, seconds)
    while not ctx.replay_only:
        remaining = wake_at - ctx.engine.clock.time()
        if remaining <= 0:
            return
        await ctx.engine.clock.wait_async(ctx.cancel_event, remaining)
        ctx.check_live()


# -- messages --------------------------------------------------------------------------------------


def send_outside(
    engine_or_client: Any,
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
    if not engine_or_client.store.send_message(workflow_id, topic, payload, idempotency_key):
        raise WorkflowNotFound(workflow_id)


def _send_in_workflow(ctx: WorkflowContext, workflow_id: str, message: Any, topic: str) -> None:
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
    try:
        sent = ctx.engine.store.send_message(
            workflow_id, topic, payload, f"{ctx.workflow_id}:{step_id}", step=step
        )
    except OwnershipLost:
        raise Aborted(ctx.workflow_id) from None
    if not sent:
        raise WorkflowNotFound(workflow_id)


def send(
    workflow_id: str, message: Any, topic: str | None = None, idempotency_key: str | None = None
) -> None:
    """Send a durable message to a workflow: delivered exactly once, in order per topic.

    Inside a workflow the send is a step (not repeated on replay); outside, an
    ``idempotency_key`` makes a retried send deliver once."""
    topic = validate_key(topic, "topic", allow_none=True)
    ctx = ctxmod.current()
    if ctx is not None:
        return _send_in_workflow(ctx, workflow_id, message, topic)
    return send_outside(engine_for_call(), workflow_id, message, topic, idempotency_key)


async def send_async(
    workflow_id: str, message: Any, topic: str | None = None, idempotency_key: str | None = None
) -> None:
    await asyncio.to_thread(send, workflow_id, message, topic, idempotency_key)


DEADLINE_MARK = "durable.recv.deadline"


def _recv_start(
    ctx: WorkflowContext, topic: str | None, timeout: float | None
) -> tuple[int, str, float, Any]:
    topic = validate_key(topic, "topic", allow_none=True)
    seconds = _wait_seconds(timeout)
    step_id = ctx.next_step_id()
    recorded = ctx.replayed(step_id, "durable.recv")
    # A recv that had to wait recorded its deadline under the negative of its step ID, so a
    # replay (after parking or a crash) keeps the original deadline.
    mark = ctx.replayed(-step_id, DEADLINE_MARK)
    if mark is not None:
        deadline = float(ctx.engine.serializer.loads(mark.output or "0"))
    else:
        deadline = ctx.engine.clock.time() + seconds
    return step_id, topic, deadline, recorded


def _record_deadline(ctx: WorkflowContext, step_id: int, deadline: float) -> None:
    """Before the first wait of a recv with a finite timeout (once per recv, not per poll)."""
    if deadline == float("inf") or -step_id in ctx.recorded:
        return
    output = ctx.engine.serializer.dumps(deadline)
    checkpoint(ctx, -step_id, DEADLINE_MARK, output, None, None, ctx.engine.clock.now_ms())
    ctx.recorded[-step_id] = StepRow(-step_id, DEADLINE_MARK, output, None, None, None, None)


def _recv_try(
    ctx: WorkflowContext, step_id: int, topic: str, deadline: float, started: int
) -> tuple[bool, Any]:
    engine = ctx.engine
    try:
        found, payload = engine.store.consume_message(
            ctx.workflow_id, ctx.run_token, step_id, topic, started
        )
    except OwnershipLost:
        raise Aborted(ctx.workflow_id) from None
    if found and payload is not None:
        return True, engine.serializer.loads(payload)
    if ctx.engine.clock.time() >= deadline:
        checkpoint(ctx, step_id, "durable.recv", None, None, None, started)
        return True, None
    _record_deadline(ctx, step_id, deadline)
    return False, None


def recv(topic: str | None = None, timeout: float | None = 60) -> Any:
    """Receive the next message on ``topic`` sent to this workflow; ``None`` on timeout."""
    ctx = ctxmod.require("recv()")
    step_id, topic, deadline, recorded = _recv_start(ctx, topic, timeout)
    if recorded is not None:
        return None if recorded.output is None else ctx.engine.serializer.loads(recorded.output)
    engine, key, started = ctx.engine, ("m", ctx.workflow_id), ctx.engine.clock.now_ms()
    waiting_since = time.monotonic()
    while True:
        seen = engine.notifier.version(key)
        done, value = _recv_try(ctx, step_id, topic, deadline, started)
        if done:
            return value
        ctx.check_live()
        wait_or_park(ctx, [key], [seen], deadline, waiting_since)


async def recv_async(topic: str | None = None, timeout: float | None = 60) -> Any:
    ctx = ctxmod.require("recv_async()")
    step_id, topic, deadline, recorded = _recv_start(ctx, topic, timeout)
    if recorded is not None:
        return None if recorded.output is None else ctx.engine.serializer.loads(recorded.output)
    engine, key, started = ctx.engine, ("m", ctx.workflow_id), ctx.engine.clock.now_ms()
    while True:
        seen = engine.notifier.version(key)
        done, value = await asyncio.to_thread(_recv_try, ctx, step_id, topic, deadline, started)
        if done:
            return value
        ctx.check_live()
        remaining = deadline - ctx.engine.clock.time()
        await engine.notifier.wait_async([key], [seen], min(remaining, engine.poll_interval))


# -- events ----------------------------------------------------------------------------------------


def set_event(key: str, value: Any) -> None:
    """Publish ``key = value`` from this workflow for ``get_event`` readers."""
    ctx = ctxmod.require("set_event()")
    key = validate_key(key, "event key")
    step_id = ctx.next_step_id()
    if ctx.replayed(step_id, "durable.set_event") is not None:
        return
    ctx.check_live()
    payload = ctx.engine.serializer.dumps(value)
    try:
        ctx.engine.store.set_event(
            ctx.workflow_id, ctx.run_token, step_id, key, payload, ctx.engine.clock.now_ms()
        )
    except OwnershipLost:
        raise Aborted(ctx.workflow_id) from None


async def set_event_async(key: str, value: Any) -> None:
    await asyncio.to_thread(set_event, key, value)


def _wait_event(owner: Any, workflow_id: str, key: str, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    ekey, wkey = ("e", workflow_id), ("w", workflow_id)
    while True:
        seen = [owner.notifier.version(ekey), owner.notifier.version(wkey)]
        found, payload = owner.store.get_event(workflow_id, key)
        if found:
            return owner.serializer.loads(payload)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        owner.notifier.wait([ekey, wkey], seen, min(remaining, owner.poll_interval))


def get_event_outside(owner: Any, workflow_id: str, key: str, timeout: float | None) -> Any:
    validation.workflow_id(workflow_id)
    key = validate_key(key, "event key")
    return _wait_event(owner, workflow_id, key, _wait_seconds(timeout))


def get_event(workflow_id: str, key: str, timeout: float | None = 60) -> Any:
    """Wait up to ``timeout`` seconds for workflow ``workflow_id`` to set ``key``; ``None`` if
    it does not. Inside a workflow the value read is recorded as a step."""
    key = validate_key(key, "event key")
    seconds = _wait_seconds(timeout)
    ctx = ctxmod.current()
    if ctx is None:
        return _wait_event(engine_for_call(), workflow_id, key, seconds)
    step_id = ctx.next_step_id()
    recorded = ctx.replayed(step_id, "durable.get_event")
    if recorded is not None:
        return None if recorded.output is None else ctx.engine.serializer.loads(recorded.output)
    ctx.check_live()
    engine, started = ctx.engine, ctx.engine.clock.now_ms()
    mark = ctx.replayed(-step_id, DEADLINE_MARK)
    deadline = (
        float(engine.serializer.loads(mark.output or "0"))
        if mark
        else ctx.engine.clock.time() + seconds
    )
    keys = [("e", workflow_id), ("w", workflow_id)]
    waiting_since = time.monotonic()
    while True:
        seen = [engine.notifier.version(k) for k in keys]
        found, payload = engine.store.get_event(workflow_id, key)
        if found or ctx.engine.clock.time() >= deadline:
            checkpoint(
                ctx, step_id, "durable.get_event", payload if found else None, None, None, started
            )
            return engine.serializer.loads(payload) if found and payload is not None else None
        ctx.check_live()
        _record_deadline(ctx, step_id, deadline)
        wait_or_park(ctx, keys, seen, deadline, waiting_since)


async def get_event_async(workflow_id: str, key: str, timeout: float | None = 60) -> Any:
    return await asyncio.to_thread(get_event, workflow_id, key, timeout)


# -- streams ---------------------------------------------------------------------------------------


def _write(key: str, value: Any, is_close: bool, what: str) -> None:
    ctx = ctxmod.require(what)
    key = validate_key(key, "stream key")
    name = "durable.close_stream" if is_close else "durable.write_stream"
    step_id = ctx.next_step_id()
    if ctx.replayed(step_id, name) is not None:
        return
    ctx.check_live()
    payload = None if is_close else ctx.engine.serializer.dumps(value)
    try:
        ctx.engine.store.write_stream(
            ctx.workflow_id,
            ctx.run_token,
            step_id,
            key,
            payload,
            is_close,
            ctx.engine.clock.now_ms(),
        )
    except OwnershipLost:
        raise Aborted(ctx.workflow_id) from None


def write_stream(key: str, value: Any) -> None:
    """Append ``value`` to this workflow's stream ``key`` (tokens, progress)."""
    _write(key, value, False, "write_stream()")


def close_stream(key: str) -> None:
    """Mark stream ``key`` finished: readers stop after the values before it."""
    _write(key, None, True, "close_stream()")


async def write_stream_async(key: str, value: Any) -> None:
    await asyncio.to_thread(write_stream, key, value)


async def close_stream_async(key: str) -> None:
    await asyncio.to_thread(close_stream, key)


class StreamReader:
    """Iterates a workflow's stream in order, sync or async; ends when the stream is closed or
    the workflow has ended and every value written before that has been read.

    ``after`` skips the first ``after`` values (the n-th value written has position n), so a
    reader that reconnects (an SSE client's ``Last-Event-ID``) continues where it stopped."""

    def __init__(self, owner: Any, workflow_id: str, key: str, after: int = 0):
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ValueError(f"after must be a position >= 0 in the stream, not {after!r}")
        self._owner = owner
        self.workflow_id = validation.workflow_id(workflow_id)
        self.key = validate_key(key, "stream key")
        self.after = after

    def _batch(self, after: int) -> tuple[list[tuple], bool, list[int]]:
        notifier = self._owner.notifier
        seen = [
            notifier.version(("s", self.workflow_id)),
            notifier.version(("w", self.workflow_id)),
        ]
        outcome = self._owner.store.get_outcome(self.workflow_id)
        if outcome is None:
            raise WorkflowNotFound(self.workflow_id)
        rows = self._owner.store.read_stream(self.workflow_id, self.key, after)
        return rows, outcome[0] in TERMINAL, seen

    def __iter__(self) -> Iterator[Any]:
        after = self.after
        keys = [("s", self.workflow_id), ("w", self.workflow_id)]
        while True:
            rows, ended, seen = self._batch(after)
            for seq, value, is_close in rows:
                if is_close:
                    return
                after = seq
                yield self._owner.serializer.loads(value)
            if not rows:
                if ended:
                    return
                self._owner.notifier.wait(keys, seen, self._owner.poll_interval)

    async def __aiter__(self) -> AsyncIterator[Any]:
        after = self.after
        keys = [("s", self.workflow_id), ("w", self.workflow_id)]
        while True:
            rows, ended, seen = await asyncio.to_thread(self._batch, after)
            for seq, value, is_close in rows:
                if is_close:
                    return
                after = seq
                yield self._owner.serializer.loads(value)
            if not rows:
                if ended:
                    return
                await self._owner.notifier.wait_async(keys, seen, self._owner.poll_interval)


def read_stream(workflow_id: str, key: str, after: int = 0) -> StreamReader:
    """Read the values workflow ``workflow_id`` writes to stream ``key``, in order (from
    position ``after`` on)."""
    return StreamReader(engine_for_call(), workflow_id, key, after)
