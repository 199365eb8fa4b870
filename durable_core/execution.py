"""Running a workflow: replay of recorded outcomes, step IDs, retries, child workflows.

A workflow (re)starts with its recorded steps read once; each step call takes the next step ID
and either returns the recorded outcome or runs and checkpoints it. The checkpoint is a single
INSERT that only succeeds while this execution owns the workflow (see ``store.record_step``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from . import context as ctxmod
from . import metrics, observability, validation
from .context import Aborted, ExecutionStopped, Suspend, WorkflowContext, engine_for_call
from .drivers import (
    Call,
    Pause,
    Plan,
    StepBody,
    TransactionBody,
    WorkflowBody,
    run_async,
    run_sync,
)
from .drivers import as_failure as as_failure  # where the engine has found them
from .drivers import unwinds as unwinds
from .errors import SerializationError, StepRetriesExceeded
from .handles import WorkflowHandle
from .registry import StepDef, WorkflowDef
from .runtime import Runtime
from .runtime import StepHooks as StepHooks  # its old home
from .serialization import decode_arguments, decode_error, encode_error, fallback_error
from .store import OwnershipLost, StepRow, WorkflowRow
from .waits import wait_for_result

log = logging.getLogger("durable_core.execution")


# -- outcomes ----------------------------------------------------------------------------------


class OutcomeNotRecorded(Exception):
    """Finishing a workflow failed in the engine's own bookkeeping (logged where it happened);
    the workflow stays PENDING here and this executor's sweep runs it again."""


def replay_outcome(engine: Runtime, ctx: WorkflowContext, row: StepRow) -> Any:
    if row.error is not None:
        raise decode_error(engine.serializer, row.error, ctx.workflow_id)
    return None if row.output is None else engine.serializer.loads(row.output)


def encode_outcome(
    engine: Runtime, value: Any, exc: BaseException | None
) -> tuple[str | None, str | None, BaseException | None]:
    """Encode a step's outcome; a result that cannot be encoded becomes the step's error."""
    if exc is not None:
        return None, encode_error(engine.serializer, exc), exc
    try:
        return engine.serializer.dumps(value), None, None
    except Exception as err:  # a custom serializer may raise anything
        detail = str(err) if isinstance(err, SerializationError) else f"{type(err).__name__}: {err}"
        err = SerializationError(f"the result of the step cannot be serialized: {detail}")
        return None, encode_error(engine.serializer, err), err


def checkpoint(
    ctx: WorkflowContext,
    step_id: int,
    name: str,
    output: str | None,
    error: str | None,
    child_id: str | None,
    started: int,
    attempts: int = 1,
) -> None:
    try:
        ctx.engine.store.record_step(
            ctx.workflow_id,
            ctx.run_token,
            step_id,
            name,
            output,
            error,
            child_id,
            started,
            attempts=attempts,
        )
    except OwnershipLost:
        raise Aborted(ctx.workflow_id) from None


# -- workflows ---------------------------------------------------------------------------------


def new_context(
    engine: Runtime, defn: WorkflowDef, row: WorkflowRow, steps: list[StepRow], can_suspend: bool
) -> WorkflowContext:
    return WorkflowContext(
        engine=engine,
        workflow_id=row.workflow_id,
        name=defn.name,
        run_token=row.run_token or "",
        recorded={s.step_id: s for s in steps},
        deadline_ms=row.deadline,
        is_async=defn.is_async,
        can_suspend=can_suspend and not defn.is_async,
    )


def finish(engine: Runtime, ctx: WorkflowContext, value: Any, exc: BaseException | None) -> None:
    """Record the workflow's outcome. An outcome that cannot be encoded is recorded as an
    error saying so; a failure to record at all is logged and raised as ``OutcomeNotRecorded``."""
    try:
        output, error, _ = encode_outcome(engine, value, exc)
    except Exception as failure:
        log.exception(
            "workflow %s: its outcome could not be encoded; recording that as its error",
            ctx.workflow_id,
        )
        output, error = None, fallback_error(failure, exc)
    status = "SUCCESS" if error is None else "ERROR"
    try:
        with ctx.pending_lock:  # the last step's checkpoint, if deferred, goes with it
            finished = engine.store.finish_workflow(
                ctx.workflow_id, ctx.run_token, status, output, error, ctx.take_pending()
            )
    except Exception as failure:
        log.exception("workflow %s: its outcome could not be recorded", ctx.workflow_id)
        raise OutcomeNotRecorded(ctx.workflow_id) from failure
    if not finished:
        raise Aborted(ctx.workflow_id)
    metrics.workflow_finished(ctx.name, status)
    if exc is not None:  # the worker's log is where an operator looks first
        log.error(
            "workflow %s (%s) failed: %s: %s",
            ctx.workflow_id,
            ctx.name,
            type(exc).__name__,
            exc,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        engine.alerts.workflow_failed(ctx.workflow_id, ctx.name, exc)


def execute_sync(
    engine: Runtime,
    defn: WorkflowDef,
    row: WorkflowRow,
    steps: list[StepRow],
    can_suspend: bool = True,
) -> Any:
    """Run or replay a sync workflow in this thread to its end.

    Returns its result or raises its exception; raises ``Suspend`` when it gave back its thread
    to wait, and ``Aborted`` when it no longer owns the workflow.
    """
    with _executing(engine, defn, row, steps, can_suspend) as ctx:
        return _outcome(*run_sync(_body(engine, ctx, defn, row)))


async def execute_async(
    engine: Runtime, defn: WorkflowDef, row: WorkflowRow, steps: list[StepRow]
) -> Any:
    """Run or replay an async workflow in this task to its end (see ``execute_sync``)."""
    with _executing(engine, defn, row, steps, can_suspend=False) as ctx:
        return _outcome(*await run_async(_body(engine, ctx, defn, row)))


def _body(
    engine: Runtime, ctx: WorkflowContext, defn: WorkflowDef, row: WorkflowRow
) -> Plan[tuple[Any, BaseException | None]]:
    """A workflow's body and its outcome: decode the inputs, run the function, record what
    it returned or raised. The engine's own signals (``Suspend``, ``Aborted``...) unwind
    untouched, with nothing recorded. The failure is returned, not raised here: a generator
    cannot raise a ``StopIteration`` (PEP 479 would turn it into a ``RuntimeError``)."""
    args, kwargs = decode_arguments(engine.serializer, row.inputs)
    try:
        value = yield WorkflowBody(defn.fn, args, kwargs)
    except BaseException as exc:
        if unwinds(exc):
            raise
        yield Call(finish, (engine, ctx, None, exc))
        return None, exc
    yield Call(finish, (engine, ctx, value, None))
    return value, None


def _outcome(value: Any, exc: BaseException | None) -> Any:
    if exc is not None:
        raise exc
    return value


@contextlib.contextmanager
def _executing(
    engine: Runtime, defn: WorkflowDef, row: WorkflowRow, steps: list[StepRow], can_suspend: bool
) -> Iterator[WorkflowContext]:
    """One execution of a workflow: registered as running here, current in this thread or
    task, traced; all of it undone when the execution ends, however it ends."""
    ctx = new_context(engine, defn, row, steps, can_suspend)
    engine.register_execution(ctx)
    token = ctxmod.set_current(ctx)
    span = observability.workflow_span(ctx, row)
    if not ctx.recorded and not row.recovery_attempts:
        metrics.workflow_started(ctx.name)
    try:
        yield ctx
    except BaseException as exc:
        span.record(exc)
        if ctx.pending is not None and not isinstance(exc, ExecutionStopped):
            # Unwound before its outcome (parked, aborted...): the step that ran is recorded
            # first, as if it had been checkpointed at once (a process that died writes none).
            ctx.write_pending()
        raise
    finally:
        span.end()
        ctxmod.reset_current(token)
        engine.unregister_execution(ctx)


def call_workflow(defn: WorkflowDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A direct call of a sync workflow: a child inside a workflow, else a new durable run."""
    ctx = ctxmod.current()
    if ctx is not None:
        return call_child(ctx, defn, args, kwargs, wait=True)
    engine = engine_for_call()
    row, created = engine.create_workflow(defn, args, kwargs)
    if not created:
        return WorkflowHandle(engine, row.workflow_id).result()
    return engine.run_inline(defn, row)


async def call_workflow_async(
    defn: WorkflowDef, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    ctx = ctxmod.current()
    engine = engine_for_call()
    if ctx is not None:
        handle = await asyncio.to_thread(start_child, ctx, defn, args, kwargs, None)
        return await handle.result_async()
    row, created = await asyncio.to_thread(engine.create_workflow, defn, args, kwargs)
    if not created:
        return await WorkflowHandle(engine, row.workflow_id).result_async()
    try:
        return await execute_async(engine, defn, row, [])
    except Aborted:
        return await WorkflowHandle(engine, row.workflow_id).result_async()


def start_child(
    ctx: WorkflowContext,
    defn: WorkflowDef,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    workflow_id: str | None,
    timeout: float | None = None,
    run: bool = True,
) -> WorkflowHandle[Any]:
    """Start a child workflow under a deterministic ID, recorded as the parent's next step."""
    engine = ctx.engine
    step_id = ctx.next_step_id()
    recorded = ctx.replayed(step_id, defn.name)
    if recorded is not None:
        return WorkflowHandle(engine, recorded.child_workflow_id or "")
    ctx.check_live()
    child_id = validation.optional_workflow_id(workflow_id) or validation.child_workflow_id(
        ctx.workflow_id, step_id
    )
    started = engine.clock.now_ms()
    row, created = engine.create_workflow(
        defn, args, kwargs, workflow_id=child_id, parent=ctx, timeout=timeout
    )
    checkpoint(ctx, step_id, defn.name, None, None, child_id, started)
    if created and run:
        engine.submit(defn, row, [])
    return WorkflowHandle(engine, child_id)


def call_child(
    ctx: WorkflowContext,
    defn: WorkflowDef,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    wait: bool,
) -> Any:
    engine = ctx.engine
    step_id = ctx.next_step_id()
    recorded = ctx.replayed(step_id, defn.name)
    if recorded is None:
        ctx.check_live()
        child_id = validation.child_workflow_id(ctx.workflow_id, step_id)
        started = engine.clock.now_ms()
        row, created = engine.create_workflow(defn, args, kwargs, workflow_id=child_id, parent=ctx)
        checkpoint(ctx, step_id, defn.name, None, None, child_id, started)
        if created:
            # Run the child inline in this thread: no hand-off, no pool slot taken while waiting.
            try:
                return execute_sync(engine, defn, row, [], can_suspend=ctx.can_suspend)
            except Suspend as suspended:
                engine.park(defn, child_id, suspended)
            except Aborted:
                pass
    else:
        child_id = recorded.child_workflow_id or ""
    return wait_for_result(ctx, child_id)


# -- steps -------------------------------------------------------------------------------------


def call_step(defn: StepDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    ctx = ctxmod.current()
    if ctx is None:
        return defn.fn(*args, **kwargs)
    return run_sync(_step(ctx, ctx.next_step_id(), defn, args, kwargs))


def call_step_async(defn: StepDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Returns the awaitable of an async step. The step ID is taken here, when the step is
    called, not when it is awaited, so ``asyncio.gather`` of steps replays deterministically."""
    ctx = ctxmod.current()
    if ctx is None:
        return defn.fn(*args, **kwargs)
    return run_async(_step(ctx, ctx.next_step_id(), defn, args, kwargs))


def _step(
    ctx: WorkflowContext, step_id: int, defn: StepDef, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Plan[Any]:
    """A step, sync or async: replay its recorded outcome, or run it (with its retries, or
    through the @transaction adapter) and checkpoint the outcome."""
    engine = ctx.engine
    recorded = ctx.replayed(step_id, defn.name)
    if recorded is not None:
        return replay_outcome(engine, ctx, recorded)
    ctx.check_live()
    hooks = engine.step_hooks
    if hooks is not None:
        defn = hooks.before_step(ctx.name, ctx.workflow_id, step_id, defn)
    started = engine.clock.now_ms()
    with observability.step_span(ctx, step_id, defn.name) as span:
        attempts = 1  # a @transaction retries only outages, never its body's own failures
        if defn.kind == "transaction":
            value, exc = yield TransactionBody(ctx, step_id, defn, args, kwargs)
        else:
            value, exc, attempts = yield from _with_retries(ctx, step_id, defn, args, kwargs)
        output, error, exc = encode_outcome(engine, value, exc)
        span.outcome(exc)
    ended = engine.clock.now_ms()
    metrics.step_finished(defn.name, (ended - started) / 1000, exc is not None)
    if hooks is None and not ctx.is_async and defn.kind == "step" and engine.checkpoint_delay:
        # Deferred: written with the outcome if the body returns next (see WorkflowContext).
        ctx.pending_since = time.monotonic()
        ctx.pending = (step_id, defn.name, output, error, None, started, ended, attempts)
    else:
        yield Call(checkpoint, (ctx, step_id, defn.name, output, error, None, started, attempts))
    if hooks is not None:
        hooks.after_step(ctx.name, ctx.workflow_id, step_id, defn)
    if exc is not None:
        raise exc
    return value


def _with_retries(
    ctx: WorkflowContext, step_id: int, defn: StepDef, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Plan[tuple[Any, BaseException | None, int]]:
    """Attempts of a step body under its retry policy (``retries.RetryPolicy``); the outcome
    is the value, the failure itself when it is not retryable (or retries are off), or
    ``StepRetriesExceeded`` when every allowed attempt failed, with how many attempts ran
    (recorded with the checkpoint: retries that ended in success are visible too)."""
    policy = defn.policy
    seed = f"{ctx.workflow_id}:{step_id}"
    attempt = 0
    while True:
        attempt += 1
        value, failure = yield StepBody(ctx, defn, args, kwargs, attempt, step_id)
        if failure is None:
            return value, None, attempt
        if policy.retries == 0 or not policy.retryable(failure, attempt):
            return None, failure, attempt
        if attempt > policy.retries:
            return None, StepRetriesExceeded(defn.name, attempt, failure), attempt
        delay = policy.delay(failure, attempt, seed)
        metrics.step_retried(defn.name)
        log.info(
            "step %s of workflow %s failed (%s); retry %d in %.2fs",
            defn.name,
            ctx.workflow_id,
            failure,
            attempt,
            delay,
        )
        yield Pause(ctx, ctx.engine.clock.time() + delay)
        ctx.check_live()
