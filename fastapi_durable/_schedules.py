"""The router's schedule endpoints: list, show, create, update, pause, resume, trigger,
backfill and delete schedules (JSON; behind the router's dependencies like every route)."""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

from durable_core import Schedule
from durable_core.errors import ConfigurationError, ScheduleConflict, ScheduleNotFound

from ._models import WorkflowOut

Catchup = Literal["skip", "latest", "all"]
Overlap = Literal["skip", "allow", "cancel"]

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No schedule has this ID"}}
INVALID: dict[int | str, dict[str, Any]] = {
    422: {"description": "An invalid cron expression, time zone, policy or range"}
}


def _jsonable(value: Any) -> Any:
    try:
        return jsonable_encoder(value)
    except Exception:
        return repr(value)


class ScheduleOut(BaseModel):
    schedule_id: str
    workflow_name: str
    cron: str
    timezone: str
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str | None
    catchup: str = Field(description="skip, latest or all")
    max_catchup: int
    overlap: str = Field(description="skip, allow or cancel")
    paused: bool
    source: str = Field(description="api (created at run time) or code (@scheduled)")
    last_tick: dt.datetime | None = Field(description="The newest tick consumed (run or skipped)")
    last_workflow_id: str | None
    next_tick: dt.datetime | None = Field(description="Null while paused")
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, s: Schedule) -> "ScheduleOut":
        return cls(
            schedule_id=s.schedule_id,
            workflow_name=s.workflow_name,
            cron=s.cron,
            timezone=s.timezone,
            args=[_jsonable(a) for a in s.args],
            kwargs={k: _jsonable(v) for k, v in s.kwargs.items()},
            queue=s.queue,
            catchup=s.catchup,
            max_catchup=s.max_catchup,
            overlap=s.overlap,
            paused=s.paused,
            source=s.source,
            last_tick=s.last_tick,
            last_workflow_id=s.last_workflow_id,
            next_tick=s.next_tick,
            created_at=s.created_at,
            updated_at=s.updated_at,
        )


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schedule_id: str = Field(min_length=1)
    workflow: str = Field(min_length=1, description="The workflow's registered name")
    cron: str = Field(description="Five fields (a sixth, seconds, is accepted)")
    timezone: str = "UTC"
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    queue: str | None = None
    catchup: Catchup = "latest"
    max_catchup: int = Field(default=100, ge=1)
    overlap: Overlap = "skip"
    paused: bool = False


class ScheduleUpdate(BaseModel):
    """Only the fields present change (``"queue": null`` clears the queue)."""

    model_config = ConfigDict(extra="forbid")

    workflow: str | None = Field(default=None, min_length=1)
    cron: str | None = None
    timezone: str | None = None
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    queue: str | None = None
    catchup: Catchup | None = None
    max_catchup: int | None = Field(default=None, ge=1)
    overlap: Overlap | None = None
    paused: bool | None = None


class TriggerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow_id: str | None = Field(default=None, description="Default sched:<ID>:trigger:<uuid>")


class BackfillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: dt.datetime = Field(description="Included; a time without an offset is UTC")
    end: dt.datetime = Field(description="Excluded")


class BackfillOut(BaseModel):
    schedule_id: str
    workflow_ids: list[str] = Field(description="One per tick in the range, oldest first")
    started: list[str] = Field(description="The runs this request created (others ran before)")


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def add_schedule_routes(router: APIRouter, engine_dep: Any) -> None:
    """Declare the schedule endpoints on ``router`` (``engine_dep``: the Annotated engine)."""
    ScheduleId = Annotated[str, Path(description="The schedule's ID (may contain '/')")]

    def call(schedule_id: str | None, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ScheduleNotFound as exc:
            raise HTTPException(404, detail=str(exc)) from None
        except ScheduleConflict as exc:
            raise HTTPException(409, detail=str(exc)) from None
        except (ConfigurationError, TypeError) as exc:
            raise HTTPException(422, detail=str(exc)) from None

    @router.get("/schedules", response_model=list[ScheduleOut])
    def list_schedules(engine: engine_dep) -> list[ScheduleOut]:
        return [ScheduleOut.of(s) for s in engine.list_schedules()]

    @router.post(
        "/schedules",
        response_model=ScheduleOut,
        status_code=201,
        responses={409: {"description": "The schedule ID is taken"}, **INVALID},
    )
    def create_schedule(engine: engine_dep, body: ScheduleIn) -> ScheduleOut:
        created = call(
            body.schedule_id,
            engine.create_schedule,
            body.schedule_id,
            body.workflow,
            body.cron,
            timezone=body.timezone,
            args=body.args,
            kwargs=body.kwargs,
            queue=body.queue,
            catchup=body.catchup,
            max_catchup=body.max_catchup,
            overlap=body.overlap,
            paused=body.paused,
        )
        return ScheduleOut.of(created)

    @router.post(
        "/schedules/{schedule_id:path}/pause", response_model=ScheduleOut, responses=NOT_FOUND
    )
    def pause_schedule(engine: engine_dep, schedule_id: ScheduleId) -> ScheduleOut:
        return ScheduleOut.of(call(schedule_id, engine.pause_schedule, schedule_id))

    @router.post(
        "/schedules/{schedule_id:path}/resume", response_model=ScheduleOut, responses=NOT_FOUND
    )
    def resume_schedule(engine: engine_dep, schedule_id: ScheduleId) -> ScheduleOut:
        return ScheduleOut.of(call(schedule_id, engine.resume_schedule, schedule_id))

    @router.post(
        "/schedules/{schedule_id:path}/trigger",
        response_model=WorkflowOut,
        status_code=201,
        responses=NOT_FOUND,
    )
    def trigger_schedule(
        engine: engine_dep, schedule_id: ScheduleId, body: TriggerIn | None = None
    ) -> WorkflowOut:
        workflow_id = body.workflow_id if body is not None else None
        handle = call(schedule_id, engine.trigger_schedule, schedule_id, workflow_id)
        return WorkflowOut.of(handle.status())

    @router.post(
        "/schedules/{schedule_id:path}/backfill",
        response_model=BackfillOut,
        responses={**NOT_FOUND, **INVALID},
    )
    def backfill_schedule(
        engine: engine_dep, schedule_id: ScheduleId, body: BackfillIn
    ) -> BackfillOut:
        handles = call(
            schedule_id,
            engine.backfill_schedule,
            schedule_id,
            _utc(body.start),
            _utc(body.end),
        )
        return BackfillOut(
            schedule_id=schedule_id,
            workflow_ids=[h.workflow_id for h in handles],
            started=[h.workflow_id for h in handles if h.created],
        )

    @router.get("/schedules/{schedule_id:path}", response_model=ScheduleOut, responses=NOT_FOUND)
    def show_schedule(engine: engine_dep, schedule_id: ScheduleId) -> ScheduleOut:
        return ScheduleOut.of(call(schedule_id, engine.get_schedule, schedule_id))

    @router.patch(
        "/schedules/{schedule_id:path}",
        response_model=ScheduleOut,
        responses={
            **NOT_FOUND,
            409: {"description": "A code-defined schedule's cron or workflow"},
            **INVALID,
        },
    )
    def update_schedule(
        engine: engine_dep, schedule_id: ScheduleId, body: ScheduleUpdate
    ) -> ScheduleOut:
        changes = body.model_dump(exclude_unset=True)
        if not changes:
            raise HTTPException(422, detail="nothing to change: give at least one field")
        return ScheduleOut.of(call(schedule_id, engine.update_schedule, schedule_id, **changes))

    @router.delete("/schedules/{schedule_id:path}", status_code=204, responses=NOT_FOUND)
    def delete_schedule(engine: engine_dep, schedule_id: ScheduleId) -> Response:
        call(schedule_id, engine.delete_schedule, schedule_id)
        return Response(status_code=204)
