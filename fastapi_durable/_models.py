"""Pydantic response and request models of the management router (they appear in OpenAPI)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

from durable_core import ExecutorInfo, QueueInfo, StepInfo, WorkflowStatus


def _jsonable(value: Any) -> Any:
    """Stored values as JSON; what has no JSON form (pickled objects) is shown by its repr."""
    try:
        return jsonable_encoder(value)
    except Exception:
        return repr(value)


class WorkflowOut(BaseModel):
    workflow_id: str
    name: str
    status: str = Field(
        description="PENDING ENQUEUED SUCCESS ERROR CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED"
    )
    queue: str | None
    args: list[Any] | None = Field(description="Null in summary listings")
    kwargs: dict[str, Any] | None = Field(description="Null in summary listings")
    result: Any
    error: str | None
    executor_id: str | None
    application_version: str | None
    recovery_attempts: int
    parent_workflow_id: str | None
    priority: int
    deduplication_id: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, s: WorkflowStatus, summary: bool = False) -> WorkflowOut:
        return cls(
            workflow_id=s.workflow_id,
            name=s.name,
            status=str(s.status),
            queue=s.queue,
            args=None if summary else [_jsonable(a) for a in s.args],
            kwargs=None if summary else {k: _jsonable(v) for k, v in s.kwargs.items()},
            result=None if summary else _jsonable(s.result),
            error=s.error,
            executor_id=s.executor_id,
            application_version=s.application_version,
            recovery_attempts=s.recovery_attempts,
            parent_workflow_id=s.parent_workflow_id,
            priority=s.priority,
            deduplication_id=s.deduplication_id,
            created_at=s.created_at,
            updated_at=s.updated_at,
            started_at=s.started_at,
            finished_at=s.finished_at,
        )


class StepOut(BaseModel):
    step_id: int
    name: str
    result: Any
    error: str | None
    child_workflow_id: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    attempts: int = Field(description="How many times the step ran: 1, more when retried")

    @classmethod
    def of(cls, s: StepInfo) -> StepOut:
        return cls(
            step_id=s.step_id,
            name=s.name,
            result=_jsonable(s.result),
            error=s.error,
            child_workflow_id=s.child_workflow_id,
            started_at=s.started_at,
            finished_at=s.finished_at,
            attempts=s.attempts,
        )


class ForkIn(BaseModel):
    # A misspelled field ("startStep", "new_id") must be a 422, not silently ignored.
    model_config = ConfigDict(extra="forbid")

    start_step: int = Field(
        ge=1, description="The first step to run again; earlier outcomes are copied."
    )
    workflow_id: str | None = Field(
        default=None, description="ID of the new workflow; default a new UUID."
    )


class QueueLimitsOut(BaseModel):
    concurrency: int | None
    worker_concurrency: int | None
    rate_limit: tuple[int, float] | None


class QueueOut(BaseModel):
    name: str
    paused: bool = Field(description="Workers claim nothing from a paused queue")
    enqueued: int = Field(description="Workflows waiting (ENQUEUED)")
    running: int = Field(description="Workflows running (PENDING)")
    concurrency: int | None = Field(description="In force: the override, else the declaration")
    worker_concurrency: int | None
    rate_limit: tuple[int, float] | None = Field(description="[n, seconds]")
    overridden: list[str] = Field(description="Limits that come from stored overrides")
    declared: QueueLimitsOut | None = Field(
        description="The Queue(...) declaration (this process's, else a worker's); null: unknown"
    )
    declared_version: str | None = Field(
        description="Application version of the worker that published `declared`"
    )
    updated_at: dt.datetime | None

    @classmethod
    def of(cls, q: QueueInfo) -> QueueOut:
        declared = q.declared
        return cls(
            name=q.name,
            paused=q.paused,
            enqueued=q.enqueued,
            running=q.running,
            concurrency=q.concurrency,
            worker_concurrency=q.worker_concurrency,
            rate_limit=q.rate_limit,
            overridden=list(q.overridden),
            declared=None
            if declared is None
            else QueueLimitsOut(
                concurrency=declared.concurrency,
                worker_concurrency=declared.worker_concurrency,
                rate_limit=declared.rate_limit,
            ),
            declared_version=q.declared_version,
            updated_at=q.updated_at,
        )


class QueueLimitsIn(BaseModel):
    """Fields present are set (``null`` lifts that limit); fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    concurrency: int | None = Field(default=None, ge=1, description="Most running, fleet-wide")
    worker_concurrency: int | None = Field(default=None, ge=1, description="Most per worker")
    rate_limit: tuple[int, float] | None = Field(
        default=None, description="[n, seconds]: at most n starts per window"
    )


class ExecutorOut(BaseModel):
    executor_id: str
    application_version: str | None
    hostname: str | None
    pid: int | None
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    heartbeat_age: float = Field(description="Seconds since its last heartbeat")
    live: bool = Field(description="Heartbeat younger than the lease")
    running: int = Field(description="Workflows it holds PENDING")
    running_by_name: dict[str, int]
    workflow_ids: list[str] = Field(description="The oldest of its running workflows' IDs")

    @classmethod
    def of(cls, e: ExecutorInfo) -> ExecutorOut:
        return cls(
            executor_id=e.executor_id,
            application_version=e.application_version,
            hostname=e.hostname,
            pid=e.pid,
            started_at=e.started_at,
            heartbeat_at=e.heartbeat_at,
            heartbeat_age=e.heartbeat_age,
            live=e.live,
            running=e.running,
            running_by_name=e.running_by_name,
            workflow_ids=list(e.workflow_ids),
        )
