"""Schedules as data: created, listed, paused, resumed, edited, triggered, backfilled and
deleted at run time, stored in ``durable_schedules`` (one implementation for Engine, Client,
the CLI, the Django admin and the FastAPI router; the firing loop is ``scheduler.py``).

A schedule starts its workflow with ``(scheduled_at, started_at, *args, **kwargs)`` once per
cron tick in its time zone (DST rules in ``cron.py``). Each tick's run has the workflow ID
``sched:<schedule ID>:<tick, UTC>Z``, so however many workers see the tick, one run exists.

Policies:

- ``catchup`` (what runs for ticks missed while no scheduler ran, say during a deploy):
  ``"skip"``: none (only a tick seen within ``ON_TIME`` of its time runs); ``"latest"``
  (default, and ``@scheduled``'s): the most recent missed tick runs; ``"all"``: every missed
  tick runs, oldest first, at most ``max_catchup`` of them (the most recent ones; default 100).
- ``overlap`` (a tick whose previous run is still PENDING or ENQUEUED): ``"skip"`` (default
  for created schedules): the tick is consumed without a run; ``"allow"`` (``@scheduled``'s):
  it runs beside; ``"cancel"``: the previous run (and its children) is cancelled, then the
  tick runs.

Ticks that pass while a schedule is paused are never caught up: resuming goes on from the
next tick. ``trigger`` (a run now) and ``backfill`` (one run per tick of a past range) ignore
both policies and the pause; a backfilled tick that already ran is not run again (its ID).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import cron, validation
from .errors import ConfigurationError, ScheduleConflict, ScheduleNotFound
from .registry import REGISTRY, WorkflowDef
from .serialization import Serializer, decode_arguments, encode_arguments
from .store import ScheduleRow, SQLStore, WorkflowRow

__all__ = [
    "Schedule",
    "CATCHUP_POLICIES",
    "OVERLAP_POLICIES",
    "ON_TIME",
    "MAX_BACKFILL",
    "tick_workflow_id",
]

CATCHUP_POLICIES = ("skip", "latest", "all")
OVERLAP_POLICIES = ("skip", "allow", "cancel")
#: A tick first seen by a scheduler this long after its time counts as missed.
ON_TIME = dt.timedelta(seconds=60)
#: The most runs one ``backfill_schedule`` call starts; ``max_catchup`` is bounded by it too.
MAX_BACKFILL = 10_000
#: Where a tick's run is enqueued when no queue is named and the engine that fires it (or the
#: Client) does not run it itself: every worker that knows the workflow serves this queue.
INTERNAL_QUEUE = "_durable_internal"

API, CODE = "api", "code"
ACTIVE = ("PENDING", "ENQUEUED")


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """A stored schedule, as ``list_schedules`` returns it.

    ``source`` is ``"api"`` for schedules created at run time and ``"code"`` for
    ``@scheduled`` workflows (their cron and workflow come from the code). ``last_tick`` is
    the newest tick consumed (run or skipped by a policy); ``next_tick`` the next one it will
    fire (None while paused)."""

    schedule_id: str
    workflow_name: str
    cron: str
    timezone: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    queue: str | None
    catchup: str
    max_catchup: int
    overlap: str
    paused: bool
    source: str
    last_tick: dt.datetime | None
    last_workflow_id: str | None
    next_tick: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def code_defined(self) -> bool:
        return self.source == CODE

    @classmethod
    def from_row(cls, row: ScheduleRow, serializer: Serializer) -> Schedule:
        try:
            args, kwargs = decode_arguments(serializer, row.inputs)
        except Exception:  # another serializer's inputs: still listable
            args, kwargs = (), {}
        return cls(
            schedule_id=row.schedule_id,
            workflow_name=row.workflow_name,
            cron=row.cron,
            timezone=row.timezone,
            args=args,
            kwargs=kwargs,
            queue=row.queue_name,
            catchup=row.catchup,
            max_catchup=row.max_catchup,
            overlap=row.overlap,
            paused=row.paused,
            source=row.source,
            last_tick=_datetime(row.last_tick),
            last_workflow_id=row.last_workflow_id,
            next_tick=None if row.paused else next_tick_of(row),
            created_at=_datetime(row.created_at) or dt.datetime.fromtimestamp(0, dt.UTC),
            updated_at=_datetime(row.updated_at) or dt.datetime.fromtimestamp(0, dt.UTC),
        )


def _datetime(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def tick_workflow_id(schedule_id: str, tick: dt.datetime) -> str:
    """The workflow ID of a schedule's run for ``tick`` (the same in every process)."""
    return f"sched:{schedule_id}:{cron.tick_label(tick)}"


def base_of(row: ScheduleRow) -> dt.datetime:
    """Where the search for a schedule's next tick starts: its last consumed tick, or its
    creation."""
    ms = row.last_tick if row.last_tick is not None else row.created_at
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def next_tick_of(row: ScheduleRow) -> dt.datetime | None:
    try:
        return cron.next_tick(row.cron, cron.zone(row.timezone), base_of(row))
    except Exception:  # an expression croniter cannot take any more: nothing is due
        return None


# -- validating what users give --------------------------------------------------------------


def _policy(value: Any, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise ConfigurationError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)


def _max_catchup(value: Any) -> int:
    return validation.integer(value, "max_catchup", 1, MAX_BACKFILL)


def _workflow_name(workflow: Any) -> str:
    if isinstance(workflow, str):
        return validation.name(workflow, "workflow")
    defn = getattr(workflow, "__durable_workflow__", None)
    if defn is None:
        raise ConfigurationError(
            f"workflow must be a @workflow function or its name, not {workflow!r}"
        )
    return str(defn.name)


def _aware(value: Any, what: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ConfigurationError(
            f"{what} must be an aware datetime (tzinfo=datetime.UTC, or a ZoneInfo), not {value!r}"
        )
    return value.astimezone(dt.UTC)


# -- management (everything here needs only the system database) ------------------------------


def create(
    store: SQLStore,
    serializer: Serializer,
    schedule_id: str,
    workflow: Any,
    cron_expression: str,
    *,
    timezone: str = "UTC",
    args: Iterable[Any] = (),
    kwargs: dict[str, Any] | None = None,
    queue: str | None = None,
    catchup: str = "latest",
    overlap: str = "skip",
    max_catchup: int = 100,
    paused: bool = False,
) -> Schedule:
    schedule_id = validation.name(schedule_id, "schedule_id")
    name = _workflow_name(workflow)
    cron.check_cron(cron_expression, f"schedule {schedule_id!r}")
    cron.zone(timezone)
    args = tuple(args)
    inputs = encode_arguments(serializer, name, args, validation.keyword_arguments(kwargs))
    t = store.now_ms()
    row = ScheduleRow(
        schedule_id=schedule_id,
        workflow_name=name,
        cron=cron_expression,
        timezone=timezone,
        inputs=inputs,
        queue_name=validation.optional_name(queue, "queue"),
        catchup=_policy(catchup, CATCHUP_POLICIES, "catchup"),
        max_catchup=_max_catchup(max_catchup),
        overlap=_policy(overlap, OVERLAP_POLICIES, "overlap"),
        paused=bool(paused),
        source=API,
        last_tick=None,
        last_workflow_id=None,
        created_at=t,
        updated_at=t,
    )
    if not store.insert_schedule(row):
        raise ScheduleConflict(schedule_id, "a schedule with this ID exists already")
    return Schedule.from_row(row, serializer)


def code_row(defn: WorkflowDef, now_ms: int) -> ScheduleRow:
    """The stored form of a ``@scheduled`` workflow: ID and workflow are its name (so its
    ticks keep the IDs ``@scheduled`` always gave them), UTC, latest-only catch-up, overlap
    allowed, as ``@scheduled`` always behaved."""
    assert defn.schedule is not None
    return ScheduleRow(
        schedule_id=defn.name,
        workflow_name=defn.name,
        cron=defn.schedule,
        timezone="UTC",
        inputs=None,
        queue_name=None,
        catchup="latest",
        max_catchup=100,
        overlap="allow",
        paused=False,
        source=CODE,
        last_tick=now_ms,
        last_workflow_id=None,
        created_at=now_ms,
        updated_at=now_ms,
    )


def list_all(store: SQLStore, serializer: Serializer) -> list[Schedule]:
    return [Schedule.from_row(r, serializer) for r in store.list_schedules()]


def row_of(store: SQLStore, schedule_id: str) -> ScheduleRow:
    validation.name(schedule_id, "schedule_id")
    row = store.get_schedule(schedule_id)
    if row is None:
        raise ScheduleNotFound(schedule_id)
    return row


def get(store: SQLStore, serializer: Serializer, schedule_id: str) -> Schedule:
    return Schedule.from_row(row_of(store, schedule_id), serializer)


#: What ``update`` may change (``paused`` too; ``pause``/``resume`` say it more plainly).
EDITABLE = (
    "workflow",
    "cron",
    "timezone",
    "args",
    "kwargs",
    "queue",
    "catchup",
    "overlap",
    "max_catchup",
    "paused",
)


def update(
    store: SQLStore, serializer: Serializer, schedule_id: str, changes: dict[str, Any]
) -> Schedule:
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise TypeError(
            f"update_schedule() got unexpected arguments: {', '.join(unknown)} "
            f"(editable: {', '.join(EDITABLE)})"
        )
    row = row_of(store, schedule_id)
    new = replace(row)
    if "workflow" in changes:
        new.workflow_name = _workflow_name(changes["workflow"])
    if "cron" in changes:
        new.cron = cron.check_cron(changes["cron"], f"schedule {schedule_id!r}")
    if "timezone" in changes:
        cron.zone(changes["timezone"])
        new.timezone = changes["timezone"]
    if row.source == CODE and (new.cron != row.cron or new.workflow_name != row.workflow_name):
        raise ScheduleConflict(
            schedule_id, "it is defined by @scheduled: change its cron or workflow in the code"
        )
    if {"args", "kwargs", "workflow"} & set(changes):
        old_args, old_kwargs = decode_arguments(serializer, row.inputs)
        args = tuple(changes.get("args", old_args))
        kwargs = validation.keyword_arguments(changes.get("kwargs", old_kwargs))
        new.inputs = encode_arguments(serializer, new.workflow_name, args, kwargs)
    if "queue" in changes:
        new.queue_name = validation.optional_name(changes["queue"], "queue")
    if "catchup" in changes:
        new.catchup = _policy(changes["catchup"], CATCHUP_POLICIES, "catchup")
    if "overlap" in changes:
        new.overlap = _policy(changes["overlap"], OVERLAP_POLICIES, "overlap")
    if "max_catchup" in changes:
        new.max_catchup = _max_catchup(changes["max_catchup"])
    resumed = False
    if "paused" in changes:
        new.paused = bool(changes["paused"])
        resumed = row.paused and not new.paused
    retime = new.cron != row.cron or new.timezone != row.timezone or resumed
    if not store.update_schedule(new, retime, store.now_ms()):
        raise ScheduleNotFound(schedule_id)
    return get(store, serializer, schedule_id)


def set_paused(store: SQLStore, serializer: Serializer, schedule_id: str, paused: bool) -> Schedule:
    validation.name(schedule_id, "schedule_id")
    if not store.set_schedule_paused(schedule_id, paused, store.now_ms()):
        raise ScheduleNotFound(schedule_id)
    return get(store, serializer, schedule_id)


def delete(store: SQLStore, schedule_id: str) -> None:
    """Delete a schedule; its runs stay. A code-defined one comes back at the next launch of
    an engine whose code still has it ``@scheduled``."""
    validation.name(schedule_id, "schedule_id")
    if not store.delete_schedule(schedule_id):
        raise ScheduleNotFound(schedule_id)


# -- starting runs --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Runner:
    """The engine that starts runs itself (PENDING and owned by it) when it knows the
    workflow and the schedule names no queue. A Client (None) enqueues every run."""

    executor_id: str
    application_version: str


def run_row(
    row: ScheduleRow,
    serializer: Serializer,
    workflow_id: str,
    scheduled_at: dt.datetime,
    now_ms: int,
    runner: Runner | None,
) -> WorkflowRow:
    """The workflow row of one run of schedule ``row``."""
    defn = REGISTRY.get(row.workflow_name)
    local = runner is not None and defn is not None and row.queue_name is None
    args, kwargs = decode_arguments(serializer, row.inputs)
    started = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
    inputs = encode_arguments(serializer, row.workflow_name, (scheduled_at, started, *args), kwargs)
    return WorkflowRow(
        workflow_id=workflow_id,
        name=row.workflow_name,
        status="PENDING" if local else "ENQUEUED",
        queue_name=None if local else (row.queue_name or INTERNAL_QUEUE),
        inputs=inputs,
        executor_id=runner.executor_id if local and runner else None,
        run_token=uuid.uuid4().hex if local else None,
        application_version=runner.application_version if local and runner else None,
        max_recovery_attempts=defn.max_recovery_attempts if defn is not None else 50,
        created_at=now_ms,
        updated_at=now_ms,
        started_at=now_ms if local else None,
    )


def trigger(
    store: SQLStore,
    serializer: Serializer,
    schedule_id: str,
    runner: Runner | None,
    workflow_id: str | None = None,
) -> list[WorkflowRow]:
    """One run now (``scheduled_at`` = now), whatever the policies and the pause; it becomes
    the schedule's latest run (which its overlap policy looks at). Returns the created row
    (empty when ``workflow_id`` exists already)."""
    row = row_of(store, schedule_id)
    workflow_id = validation.optional_workflow_id(workflow_id) or (
        f"sched:{schedule_id}:trigger:{uuid.uuid4().hex}"
    )
    t = store.now_ms()
    when = dt.datetime.fromtimestamp(t / 1000, dt.UTC)
    run = run_row(row, serializer, workflow_id, when, t, runner)
    created = store.start_schedule_runs(
        schedule_id, [run], consumed=None, last_workflow_id=workflow_id
    )
    return created or []


def backfill(
    store: SQLStore,
    serializer: Serializer,
    schedule_id: str,
    start: Any,
    end: Any,
    runner: Runner | None,
) -> tuple[list[str], list[WorkflowRow]]:
    """A run for every tick in ``[start, end)`` (aware datetimes), at most ``MAX_BACKFILL``.
    Returns every tick's workflow ID and the rows this call created (a tick that ran before
    keeps its run)."""
    row = row_of(store, schedule_id)
    start = _aware(start, "start")
    end = _aware(end, "end")
    if end <= start:
        raise ConfigurationError(f"backfill of {schedule_id!r}: end must be after start")
    tz = cron.zone(row.timezone)
    # [start, end): a tick exactly at ``start`` is in; one exactly at ``end`` is not.
    ticks = cron.ticks_between(
        row.cron, tz, start - dt.timedelta(microseconds=1), end, MAX_BACKFILL + 1
    )
    ticks = [t for t in ticks if t < end]
    if len(ticks) > MAX_BACKFILL:
        raise ConfigurationError(
            f"backfill of {schedule_id!r} from {start.isoformat()} to {end.isoformat()} would "
            f"start more than {MAX_BACKFILL} runs; backfill a shorter range at a time"
        )
    t = store.now_ms()
    ids = [tick_workflow_id(schedule_id, tick) for tick in ticks]
    rows = [
        run_row(row, serializer, i, tick, t, runner) for i, tick in zip(ids, ticks, strict=True)
    ]
    created: list[WorkflowRow] = []
    for first in range(0, len(rows), 500):  # bounded transactions
        created.extend(
            store.start_schedule_runs(
                schedule_id, rows[first : first + 500], consumed=None, last_workflow_id=None
            )
            or []
        )
    return ids, created


# -- what a scheduler pass fires --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Due:
    """What a pass does for one due schedule: consume ticks up to ``consume`` (epoch ms)
    and start runs for ``fire`` (oldest first; may be empty: skipped by the catch-up policy)."""

    consume: int
    fire: list[dt.datetime]


def due(row: ScheduleRow, now: dt.datetime) -> Due | None:
    """The schedule's due ticks at ``now`` under its catch-up policy; None if none is due."""
    if row.paused:
        return None
    tz = cron.zone(row.timezone)
    base = base_of(row)
    first = cron.next_tick(row.cron, tz, base)
    if first > now:
        return None
    limit = 1 if row.catchup in ("skip", "latest") else max(1, row.max_catchup)
    ticks = cron.latest_ticks(row.cron, tz, base, now, limit)
    if not ticks:
        return None
    fire = ticks
    if row.catchup == "skip":
        fire = [t for t in ticks if now - t <= ON_TIME]
    return Due(consume=_ms(ticks[-1]), fire=fire)
