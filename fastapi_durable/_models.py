"""Pydantic response and request models of the management router (they appear in OpenAPI)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

from durable_core import StepInfo, WorkflowStatus


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
