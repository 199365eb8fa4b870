"""One implementation per behaviour, two thin drivers.

A behaviour that waits or does I/O (recv, get_event, sleep, a stream, a handle's result, a step
with its retries) is written once, as a *plan*: a generator that yields effects (a blocking
call, a wait for a wake-up signal, a pause, a step body) and returns the result. ``run_sync``
performs each effect in this thread; ``run_async`` performs it without holding a thread
(blocking calls go to a worker thread only for their own duration, waits are awaited). An
exception raised by an effect is thrown into the plan at the ``yield``, so plans handle errors
and run their ``finally`` blocks as ordinary code does.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from . import context as ctxmod
from .context import Aborted, ExecutionStopped, Suspend, WorkflowContext
from .errors import StepInterrupted, StepTimeout

if TYPE_CHECKING:
    from .registry import StepDef
    from .wakeups import Notifier

T = TypeVar("T")

INF = float("inf")
CANCEL_POLL = 0.05  # seconds between looks at a workflow's cancel event during an async step


@dataclass(frozen=True, slots=True)
class Call:
    """A blocking call (the database): made in this thread, or in a worker thread for async."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait up to ``timeout`` seconds for one of ``keys`` to be signalled past ``seen``.

    With ``ctx`` (a sync workflow that may give back its thread), a wait that has lasted the
    engine's suspend threshold since ``since`` (monotonic) parks the workflow instead, until a
    key is signalled or ``deadline`` (fleet time, may be inf) passes."""

    notifier: Notifier
    keys: tuple[Any, ...]
    seen: tuple[Any, ...]
    timeout: float
    ctx: WorkflowContext | None = None
    deadline: float = INF
    since: float = 0.0


@dataclass(frozen=True, slots=True)
class Pause:
    """Sleep until ``until`` (fleet time) unless the workflow is cancelled (``Aborted``).
    With ``may_park``, a sync workflow that may suspend gives back its thread instead."""

    ctx: WorkflowContext
    until: float
    may_park: bool = False


@dataclass(frozen=True, slots=True)
class StepBody:
    """Run one attempt of a step's body; the result is ``(value, None)`` or ``(None, failure)``."""

    ctx: WorkflowContext
    defn: StepDef
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    attempt: int = 1
    step_id: int = 0


@dataclass(frozen=True, slots=True)
class TransactionBody:
    """Run a ``@transaction`` step through the engine's adapter: ``(value, exc)``."""

    ctx: WorkflowContext
    step_id: int
    defn: StepDef
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WorkflowBody:
    """Run a workflow's own function: called in this thread, or awaited. Its result is the
    workflow's value; what it raises is thrown into the plan."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Emit:
    """A value for the consumer of an iterating plan (a stream reader)."""

    value: Any


Effect = Call | Wait | Pause | StepBody | TransactionBody | WorkflowBody | Emit
Plan = Generator[Effect, Any, T]


def signal_wait(
    ctx: WorkflowContext, keys: list[Any], seen: list[Any], deadline: float, since: float
) -> Wait | None:
    """The wait of a workflow for a signal on ``keys`` until ``deadline`` (fleet time); None
    when the deadline has passed. Short waits stay in the thread; see ``Wait``."""
    engine = ctx.engine
    remaining = deadline - engine.clock.time()
    if remaining <= 0:
        return None
    budget = min(remaining, engine.poll_interval)
    return Wait(engine.notifier, tuple(keys), tuple(seen), budget, ctx, deadline, since)


# -- a step's body: the bracket both drivers put around it ----------------------------------------


def unwinds(exc: BaseException) -> bool:
    """Whether ``exc`` must unwind a workflow untouched instead of being recorded as a failure:
    the engine's own control flow, a cancellation of the task running the workflow, and an
    interrupt of the process itself (Ctrl-C or ``sys.exit`` in the main thread: the process is
    going down, and recovery resumes the workflow). Anything else a step or workflow raises,
    ``BaseException`` or not, is its recorded failure."""
    if isinstance(exc, Exception):
        return False
    if isinstance(exc, Suspend | Aborted | ExecutionStopped | GeneratorExit):
        return True
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return threading.current_thread() is threading.main_thread()
    if isinstance(exc, asyncio.CancelledError):
        try:
            task = asyncio.current_task()
        except RuntimeError:
            return True
        return task is None or task.cancelling() > 0
    return False


def as_failure(defn: StepDef, exc: BaseException) -> Exception:
    """A step's failure as an ``Exception`` the workflow code can handle (and that replays)."""
    if isinstance(exc, Exception):
        return exc
    return StepInterrupted(defn.name, type(exc).__name__, str(exc))


@contextlib.contextmanager
def _step_body(ctx: WorkflowContext, attempt: int, step_id: int) -> Iterator[None]:
    """Marks the step body as running (steps it calls are plain calls; ``step_attempt()``
    tells its attempt, and what it appends to a stream is tagged with ``step_id``) and calls the integration's step-boundary hook before and after it
    (Django drops stale connections)."""
    token = ctxmod.mark_in_step(attempt, step_id)
    ctx.engine.step_boundary()
    try:
        yield
    finally:
        ctxmod.unmark_in_step(token)
        ctx.engine.step_boundary()


def _failed(defn: StepDef, exc: BaseException) -> tuple[None, Exception]:
    if unwinds(exc):
        raise exc
    return None, as_failure(defn, exc)


# -- the sync driver ------------------------------------------------------------------------------


def _perform_sync(effect: Effect) -> Any:
    if isinstance(effect, Call):
        return effect.fn(*effect.args)
    if isinstance(effect, Wait):
        _wait_sync(effect)
        return None
    if isinstance(effect, StepBody):
        with _step_body(effect.ctx, effect.attempt, effect.step_id):
            if effect.defn.timeout is not None:
                return _bounded_sync(effect, effect.defn.timeout)
            try:
                return effect.defn.fn(*effect.args, **effect.kwargs), None
            except BaseException as exc:
                return _failed(effect.defn, exc)
    if isinstance(effect, TransactionBody):
        adapter = effect.ctx.engine.transactions
        return adapter.run(effect.ctx, effect.step_id, effect.defn, effect.args, effect.kwargs)
    if isinstance(effect, Pause):
        _pause_sync(effect)
        return None
    if isinstance(effect, WorkflowBody):
        return effect.fn(*effect.args, **effect.kwargs)
    raise TypeError(f"a plan yielded {effect!r}, which the sync driver cannot perform")


def _bounded_sync(body: StepBody, timeout: float) -> tuple[Any, Exception | None]:
    """A sync attempt with a timeout. Python cannot stop a thread, so the body runs in a
    thread of its own (a daemon, in a copy of this context) and the workflow stops waiting
    at the timeout with ``StepTimeout``; the body's thread may run on to its end, and what it
    returns then is dropped."""
    outcome: list[Any] = []
    done = threading.Event()
    context = contextvars.copy_context()

    def attempt() -> None:
        try:
            outcome.append((context.run(body.defn.fn, *body.args, **body.kwargs), None))
        except BaseException as exc:
            outcome.append((None, exc))
        finally:
            done.set()

    name = f"durable-step-{body.defn.name}-{body.ctx.workflow_id}"
    threading.Thread(target=attempt, name=name, daemon=True).start()
    if not done.wait(timeout):
        return None, StepTimeout(body.defn.name, timeout)
    value, exc = outcome[0]
    if exc is not None:
        return _failed(body.defn, exc)
    return value, None


def _wait_sync(wait: Wait) -> None:
    ctx = wait.ctx
    if ctx is None or not ctx.can_suspend:
        wait.notifier.wait(list(wait.keys), list(wait.seen), wait.timeout)
        return
    engine = ctx.engine
    in_thread = engine.suspend_threshold - (time.monotonic() - wait.since)
    # Only a share of the pool may wait on-thread at once; past that a wait parks at once, so
    # a burst of waits does not hold every thread for the threshold.
    with engine.in_thread_wait() as allowed:
        if in_thread > 0 and allowed:
            wait.notifier.wait(list(wait.keys), list(wait.seen), min(wait.timeout, in_thread))
            return
    if engine.hold_warm(ctx, wait.keys, wait.seen, wait.deadline):  # woken without a replay
        return
    raise Suspend(None if wait.deadline == INF else wait.deadline, wait.keys, wait.seen)


def _pause_sync(pause: Pause) -> None:
    ctx = pause.ctx
    engine = ctx.engine
    remaining = pause.until - engine.clock.time()
    if remaining <= 0:
        return
    if pause.may_park and ctx.can_suspend and remaining > engine.suspend_threshold:
        # A long history is held through a sleep that ends while it may be held (no replay
        # at the wake-up), as through a recv; hold_warm returns at the wake-up time, or
        # earlier on a signal about the workflow (a cancel).
        while remaining <= engine.hold_seconds and engine.hold_warm(ctx, (), (), pause.until):
            if ctx.cancel_event.is_set():
                raise Aborted(ctx.workflow_id)
            remaining = pause.until - engine.clock.time()
            if remaining <= 0:
                return
        raise Suspend(pause.until)
    # Through the engine's clock: a test clock may skip the pause.
    if ctx.engine.clock.wait(ctx.cancel_event, remaining):
        raise Aborted(ctx.workflow_id)


def iterate_sync(plan: Plan[T]) -> Generator[Any, None, T]:
    """Drive ``plan`` in this thread, yielding what it emits; returns what it returns."""
    try:
        effect = next(plan)
        while True:
            if isinstance(effect, Emit):
                yield effect.value
                effect = next(plan)
                continue
            try:
                result = _perform_sync(effect)
            except BaseException as exc:
                effect = plan.throw(exc)
                continue
            effect = plan.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        plan.close()


def run_sync(plan: Plan[T]) -> T:
    """Run ``plan`` to its end in this thread."""
    driver = iterate_sync(plan)
    try:
        next(driver)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    driver.close()
    raise TypeError("a plan run by run_sync emitted a value")


# -- the async driver -----------------------------------------------------------------------------


async def _perform_async(effect: Effect) -> Any:
    if isinstance(effect, Call):
        return await asyncio.to_thread(effect.fn, *effect.args)
    if isinstance(effect, Wait):
        await effect.notifier.wait_async(list(effect.keys), list(effect.seen), effect.timeout)
        return None
    if isinstance(effect, StepBody):
        with _step_body(effect.ctx, effect.attempt, effect.step_id):
            return await _step_async(effect)
    if isinstance(effect, TransactionBody):
        adapter = effect.ctx.engine.transactions
        return await adapter.run_async(
            effect.ctx, effect.step_id, effect.defn, effect.args, effect.kwargs
        )
    if isinstance(effect, Pause):
        await _pause_async(effect)
        return None
    if isinstance(effect, WorkflowBody):
        return await effect.fn(*effect.args, **effect.kwargs)
    raise TypeError(f"a plan yielded {effect!r}, which the async driver cannot perform")


async def _step_async(body: StepBody) -> tuple[Any, Exception | None]:
    """An async attempt: cancelled at its timeout (``StepTimeout``), and cancelled when its
    workflow is (the ``CancelledError`` is raised into the body at its current ``await``;
    the workflow then stops as at a step boundary, nothing recorded for this step)."""
    ctx, defn, timeout = body.ctx, body.defn, body.defn.timeout
    task = asyncio.current_task()
    watcher = asyncio.ensure_future(_cancel_on_abort(ctx, task)) if task is not None else None
    scope = asyncio.timeout(timeout)
    try:
        async with scope:
            return await defn.fn(*body.args, **body.kwargs), None
    except BaseException as exc:
        if watcher is not None and watcher.done() and not watcher.cancelled():
            raise Aborted(ctx.workflow_id) from None
        if isinstance(exc, TimeoutError) and scope.expired():
            return None, StepTimeout(defn.name, timeout or 0.0)
        return _failed(defn, exc)
    finally:
        if watcher is not None:
            watcher.cancel()
            if task is not None and watcher.done() and not watcher.cancelled():
                task.uncancel()  # our own cancel request, consumed (or ignored) by the body


async def _cancel_on_abort(ctx: WorkflowContext, task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` (an async step body) once the workflow is cancelled or its deadline
    (``timeout``) passes; a passed deadline is first recorded (the workflow becomes CANCELLED
    with a TimeoutError), so the interrupted step is never checkpointed. A
    ``threading.Event`` has no awaitable form, so both are polled (every 50 ms)."""
    while not ctx.cancel_event.is_set():
        if ctx.past_deadline():
            await asyncio.to_thread(ctx.engine.expire_deadline, ctx.workflow_id)
            ctx.cancel_event.set()
            break
        await asyncio.sleep(CANCEL_POLL)
    task.cancel()


async def _pause_async(pause: Pause) -> None:
    ctx = pause.ctx
    while True:
        remaining = pause.until - ctx.engine.clock.time()
        if remaining <= 0:
            return
        # The clock polls the cancel event; check_live also stops a passed deadline.
        await ctx.engine.clock.wait_async(ctx.cancel_event, remaining)
        ctx.check_live()


async def iterate_async(plan: Plan[Any]) -> AsyncIterator[Any]:
    """Drive ``plan`` without holding a thread, yielding what it emits."""
    try:
        effect = next(plan)
        while True:
            if isinstance(effect, Emit):
                yield effect.value
                effect = next(plan)
                continue
            try:
                result = await _perform_async(effect)
            except BaseException as exc:
                effect = plan.throw(exc)
                continue
            effect = plan.send(result)
    except StopIteration:
        return
    finally:
        plan.close()


async def run_async(plan: Plan[T]) -> T:
    """Run ``plan`` to its end without holding a thread while it waits."""
    try:
        effect = next(plan)
        while True:
            if isinstance(effect, Emit):
                raise TypeError("a plan run by run_async emitted a value")
            try:
                result = await _perform_async(effect)
            except BaseException as exc:
                effect = plan.throw(exc)
                continue
            effect = plan.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        plan.close()
