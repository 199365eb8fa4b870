"""The per-workflow execution context, carried in a contextvar (per thread and per asyncio task)."""

from __future__ import annotations

import contextvars
import threading
from dataclasses import dataclass, field
from typing import Any

from . import runtime
from .errors import NonDeterministicWorkflow, NotInWorkflow
from .runtime import Aborted as Aborted  # where the executions have always found them
from .runtime import Runtime
from .runtime import Suspend as Suspend
from .store import FinalStep, OwnershipLost, StepRow


class ExecutionStopped(BaseException):
    """Ends an execution as if its process had died: nothing is recorded and the workflow
    stays PENDING for recovery. Crash injection (``durable_core.testing``) raises a subclass;
    any other ``BaseException`` from a step is recorded as the step's failure."""


class HistoryEnded(BaseException):
    """A replay-only execution (``durable_core.testing.replay``) reached the end of its
    recorded history: the next call would run or wait instead of replaying."""

    def __init__(self, step_id: int, name: str):
        self.step_id = step_id
        self.name = name


@dataclass
class WorkflowContext:
    engine: Runtime
    workflow_id: str
    name: str
    run_token: str
    recorded: dict[int, StepRow]
    deadline_ms: int | None = None
    is_async: bool = False
    can_suspend: bool = True
    step_counter: int = 0
    cancel_event: threading.Event = field(default_factory=threading.Event)
    #: Only replay what is recorded; anything new ends the execution with ``HistoryEnded``.
    replay_only: bool = False
    #: The checkpoint of the plain step that ran last, not written yet (sync workflows): it
    #: goes with the workflow's outcome when the body returns next (one round trip instead of
    #: two), and is written on its own before anything else durable happens (the next step,
    #: wait, message, child...), when the execution unwinds, or by the engine's maintenance
    #: pass once it is ``Engine(checkpoint_delay=...)`` old (0: never deferred).
    pending: FinalStep | None = None
    pending_since: float = 0.0
    pending_lock: threading.Lock = field(default_factory=threading.Lock)

    def next_step_id(self) -> int:
        if self.pending is not None:
            self.write_pending()
        self.step_counter += 1
        return self.step_counter

    def take_pending(self) -> FinalStep | None:
        """The deferred checkpoint, now the caller's to write (hold ``pending_lock``)."""
        pending, self.pending = self.pending, None
        return pending

    def write_pending(self) -> None:
        """Write the deferred checkpoint now; ``Aborted`` when the workflow is no longer ours."""
        with self.pending_lock:
            pending = self.take_pending()
            if pending is None:
                return
            step_id, name, output, error, child_id, started, finished, attempts = pending
            try:
                self.engine.store.record_step(
                    self.workflow_id, self.run_token, step_id, name, output, error, child_id,
                    started, attempts=attempts, finished_at=finished,
                )  # fmt: skip
            except OwnershipLost:
                raise Aborted(self.workflow_id) from None

    def replayed(self, step_id: int, name: str) -> StepRow | None:
        """The recorded outcome of ``step_id``, checked against the name being called."""
        row = self.recorded.get(step_id)
        if row is not None and row.name != name:
            raise NonDeterministicWorkflow(self.workflow_id, step_id, row.name, name)
        if row is None and self.replay_only and step_id > 0:
            raise HistoryEnded(step_id, name)
        return row

    def check_live(self) -> None:
        """Stop at a step boundary when cancelled or past the deadline."""
        if self.replay_only:  # about to run or wait for something the history does not hold
            raise HistoryEnded(self.step_counter, "a wait")
        if self.cancel_event.is_set():
            raise Aborted(self.workflow_id)
        if self.past_deadline():
            self.engine.expire_deadline(self.workflow_id)
            raise Aborted(self.workflow_id)

    def past_deadline(self) -> bool:
        """Whether the workflow's ``timeout`` has run out (fleet time)."""
        return self.deadline_ms is not None and self.engine.clock.now_ms() > self.deadline_ms


_current: contextvars.ContextVar[WorkflowContext | None] = contextvars.ContextVar(
    "durable_workflow_context", default=None
)
# True while a step body runs: steps called from a step are plain calls.
_in_step: contextvars.ContextVar[bool] = contextvars.ContextVar("durable_in_step", default=False)
# The attempt number (1 = the first try) of the step body running, 0 outside one.
_attempt: contextvars.ContextVar[int] = contextvars.ContextVar("durable_step_attempt", default=0)
# The step ID of the plain step whose body runs, 0 outside one (and in a @transaction's body):
# what a stream value appended by the body is tagged with.
_step_id: contextvars.ContextVar[int] = contextvars.ContextVar("durable_step_id", default=0)


def current() -> WorkflowContext | None:
    ctx = _current.get()
    if ctx is None or _in_step.get():
        return None
    return ctx


def active() -> WorkflowContext | None:
    """The running workflow's context, also while one of its step bodies runs."""
    return _current.get()


def engine_for_call() -> Runtime:
    """The engine a module-level call acts on: the running workflow's, else the default."""
    ctx = _current.get()
    if ctx is not None:
        return ctx.engine
    return runtime.get_default_engine()


def require(what: str) -> WorkflowContext:
    ctx = current()
    if ctx is None:
        raise NotInWorkflow(what)
    return ctx


def workflow_id() -> str:
    """The ID of the workflow running this code; ``NotInWorkflow`` outside one."""
    ctx = _current.get()
    if ctx is None:
        raise NotInWorkflow("workflow_id()")
    return ctx.workflow_id


def set_current(ctx: WorkflowContext | None) -> Any:
    return _current.set(ctx)


def reset_current(token: Any) -> None:
    _current.reset(token)


def mark_in_step(attempt: int = 1, step_id: int = 0) -> Any:
    return _in_step.set(True), _attempt.set(attempt), _step_id.set(step_id)


def unmark_in_step(token: Any) -> None:
    in_step, attempt, sid = token
    _step_id.reset(sid)
    _attempt.reset(attempt)
    _in_step.reset(in_step)


def running_step() -> tuple[WorkflowContext, int] | None:
    """The workflow and step ID of the plain step body running this code, else None."""
    ctx, sid = _current.get(), _step_id.get()
    if ctx is None or sid == 0 or not _in_step.get():
        return None
    return ctx, sid


def step_id() -> int:
    """The step ID of the step body running this code (the ID ``list_steps`` shows once the
    step is recorded): what tells a reader which step a value it appended to a stream came
    from. ``NotInWorkflow`` outside a plain step body run by a workflow."""
    running = running_step()
    if running is None:
        raise NotInWorkflow("step_id()")
    return running[1]


def step_attempt() -> int:
    """The attempt number of the step body running this code: 1 on the first try, 2 on the
    first retry, and so on. ``NotInWorkflow`` outside a step body run by a workflow."""
    attempt = _attempt.get()
    if attempt == 0 or _current.get() is None:
        raise NotInWorkflow("step_attempt()")
    return attempt


def cancelled() -> bool:
    """Whether the workflow running this code has been cancelled, has run past its
    ``timeout``, or its engine is shutting down. A long sync step body checks it to stop early:
    Python cannot interrupt a thread, so a body that never checks runs to its end. False
    outside a workflow."""
    ctx = _current.get()
    if ctx is None:
        return False
    if not ctx.cancel_event.is_set() and ctx.past_deadline():
        # Recorded first, so whatever the body returns after stopping early is not checkpointed.
        ctx.engine.expire_deadline(ctx.workflow_id)
        ctx.cancel_event.set()
    return ctx.cancel_event.is_set()
