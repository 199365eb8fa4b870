"""Value objects and handles for inspecting workflows: WorkflowStatus, StepInfo, WorkflowHandle."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import context as ctxmod
from . import validation
from .drivers import run_async, run_sync
from .errors import WorkflowNotFound
from .runtime import SystemDatabase, in_callers_transaction
from .serialization import Serializer, decode_arguments, error_summary
from .status import TERMINAL as TERMINAL  # its old home
from .status import Status
from .store import StepRow, WorkflowRow
from .waits import outcome_plan, refuse_wait_in_transaction, wait_for_result


def _time(ms: int | None) -> dt.datetime | None:
    return None if ms is None else _timestamp(ms)


def _timestamp(ms: int) -> dt.datetime:
    # A time past what datetime holds (written by an older release that did not bound
    # timeouts, or by hand) shows as the largest datetime instead of breaking every listing.
    try:
        return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    except (OverflowError, ValueError, OSError):
        return (
            dt.datetime.max.replace(tzinfo=dt.UTC)
            if ms > 0
            else dt.datetime.min.replace(tzinfo=dt.UTC)
        )


def _safe_loads(serializer: Serializer, data: str | None) -> Any:
    if data is None:
        return None
    try:
        return serializer.loads(data)
    except Exception:
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowStatus:
    """A snapshot of one workflow as stored in the system database."""

    workflow_id: str
    name: str
    status: Status
    queue: str | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result: Any
    error: str | None
    executor_id: str | None
    application_version: str | None
    recovery_attempts: int
    parent_workflow_id: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    priority: int = 0
    deduplication_id: str | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    deadline: dt.datetime | None = None
    #: Where a listing continues after this row: ``list_workflows(after=status.cursor)``.
    cursor: str | None = None

    @classmethod
    def from_row(cls, row: WorkflowRow, serializer: Serializer) -> WorkflowStatus:
        try:
            args, kwargs = decode_arguments(serializer, row.inputs)
        except Exception:
            args, kwargs = (), {}
        return cls(
            workflow_id=row.workflow_id,
            name=row.name,
            status=Status(row.status),
            queue=row.queue_name,
            args=args,
            kwargs=kwargs,
            result=_safe_loads(serializer, row.output),
            error=error_summary(row.error),
            executor_id=row.executor_id,
            application_version=row.application_version,
            recovery_attempts=row.recovery_attempts,
            parent_workflow_id=row.parent_workflow_id,
            created_at=_timestamp(row.created_at),
            updated_at=_timestamp(row.updated_at),
            priority=row.priority,
            deduplication_id=row.deduplication_id,
            started_at=_time(row.started_at),
            finished_at=_time(row.finished_at),
            cursor=f"{int(row.created_at)}:{row.workflow_id}",
            deadline=_time(row.deadline),
        )

    @property
    def duration(self) -> dt.timedelta | None:
        if self.finished_at and self.started_at:
            return self.finished_at - self.started_at
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepInfo:
    """One recorded step of a workflow."""

    step_id: int
    name: str
    result: Any
    error: str | None
    child_workflow_id: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    #: How many times the step's body ran: 1, or more when it was retried (a step that failed
    #: twice and then succeeded shows 3). 1 for sleeps, messages, events and child workflows.
    attempts: int = 1

    @classmethod
    def from_row(cls, row: StepRow, serializer: Serializer) -> StepInfo:
        return cls(
            step_id=row.step_id,
            name=row.name,
            result=_safe_loads(serializer, row.output),
            error=error_summary(row.error),
            child_workflow_id=row.child_workflow_id,
            started_at=_time(row.started_at),
            finished_at=_time(row.finished_at),
            attempts=row.attempts,
        )


# How long a caller waits: None or inf without limit (the one rule is in validation.py).
validate_timeout = validation.wait_seconds


R_co = TypeVar("R_co", covariant=True)


class WorkflowHandle(Generic[R_co]):
    """A reference to a workflow by ID: wait for its result or read its status.

    ``created`` says, on a handle returned by a start or an enqueue, whether that call stored
    the workflow (True) or found one already stored under its ID (False: the ID worked as an
    idempotency key); None on handles that were only looked up (``retrieve_workflow``)."""

    def __init__(self, owner: SystemDatabase, workflow_id: str, created: bool | None = None):
        # ``owner`` is an Engine or a Client: anything with store, serializer, notifier.
        self._owner = owner
        self.workflow_id = workflow_id
        self.created = created

    def __repr__(self) -> str:
        return f"WorkflowHandle({self.workflow_id!r})"

    def result(self, timeout: float | None = None) -> R_co:
        """Wait for the workflow to finish and return its result (or raise its exception).

        Raises ``TimeoutError`` when ``timeout`` seconds pass first."""
        timeout = validate_timeout(timeout)
        ctx = ctxmod.current()
        # The stored outcome is what the workflow returned: R_co by the handle's construction.
        result: R_co
        if ctx is not None and timeout is None and not ctx.is_async:
            result = wait_for_result(ctx, self.workflow_id)
            return result
        refuse_wait_in_transaction(self._owner, self.workflow_id)
        with self._owner.awaiting_result(self.workflow_id):
            result = run_sync(outcome_plan(self._owner, self.workflow_id, timeout))
        return result

    async def result_async(self, timeout: float | None = None) -> R_co:
        """``result()`` without holding a thread while waiting."""
        timeout = validate_timeout(timeout)
        owner, workflow_id = self._owner, self.workflow_id
        if ctxmod.current() is None:  # a workflow has no caller's transaction to refuse
            # Where the caller's transaction is: async_to_sync() inside Django's atomic()
            # runs this coroutine in another thread than the one that holds the block.
            await owner.in_callers_thread(lambda: refuse_wait_in_transaction(owner, workflow_id))
        with self._owner.awaiting_result(self.workflow_id):
            return await run_async(outcome_plan(self._owner, self.workflow_id, timeout))

    def status(self) -> WorkflowStatus:
        # Inside the caller's atomic(): sees a workflow started there, not committed yet.
        with in_callers_transaction(self._owner):
            row = self._owner.store.get_workflow(self.workflow_id)
        if row is None:
            raise WorkflowNotFound(self.workflow_id)
        return WorkflowStatus.from_row(row, self._owner.serializer)

    async def status_async(self) -> WorkflowStatus:
        return await asyncio.to_thread(self.status)
