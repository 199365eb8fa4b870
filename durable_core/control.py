"""Inspection and control operations shared by Engine and Client (they need only a store)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from . import fleet, schedules, validation
from .drivers import run_async
from .errors import ConfigurationError, WorkflowNotFound
from .fleet import UNCHANGED, ExecutorInfo, QueueInfo
from .handles import StepInfo, WorkflowHandle, WorkflowStatus
from .history import export_history
from .messaging import StreamReader, get_event_outside, get_event_plan, send_outside
from .registry import REGISTRY
from .runtime import in_callers_transaction
from .schedules import Schedule
from .serialization import Serializer
from .store import SQLStore, WorkflowRow

validate_workflow_id = validation.workflow_id  # the one rule (see validation.py)
T = TypeVar("T")


def list_workflows(
    store: SQLStore,
    serializer: Serializer,
    status: str | Sequence[str] | None,
    name: str | None,
    queue: str | None,
    created_after: dt.datetime | None,
    created_before: dt.datetime | None,
    limit: int | None,
    offset: int,
    newest_first: bool,
    after: str | None = None,
    workflow_ids: Sequence[str] | None = None,
) -> list[WorkflowStatus]:
    ids = None if workflow_ids is None else [validate_workflow_id(w) for w in workflow_ids]
    rows = store.list_workflows(
        status=validation.statuses(status),
        name=validation.optional_name(name, "name"),
        queue=validation.optional_name(queue, "queue"),
        created_after=validation.timestamp_ms(created_after, "created_after"),
        created_before=validation.timestamp_ms(created_before, "created_before"),
        limit=validation.limit(limit),
        offset=validation.offset(offset),
        newest_first=bool(newest_first),
        after=decode_cursor(after),
        workflow_ids=ids,
    )
    return [WorkflowStatus.from_row(r, serializer) for r in rows]


def decode_cursor(cursor: Any) -> tuple[int, str] | None:
    """``WorkflowStatus.cursor`` (``"<created ms>:<workflow ID>"``) as the store's keyset."""
    if cursor is None:
        return None
    created, sep, workflow_id = cursor.partition(":") if isinstance(cursor, str) else ("", "", "")
    if not sep or not created.isdigit() or not workflow_id:
        raise ConfigurationError(
            f"after must be a WorkflowStatus.cursor from an earlier listing, not {cursor!r}"
        )
    return int(created), validate_workflow_id(workflow_id)


def count_workflows(
    store: SQLStore,
    status: str | Sequence[str] | None,
    name: str | None,
    queue: str | None,
    created_after: dt.datetime | None,
    created_before: dt.datetime | None,
) -> int:
    return store.count_workflows(
        status=validation.statuses(status),
        name=validation.optional_name(name, "name"),
        queue=validation.optional_name(queue, "queue"),
        created_after=validation.timestamp_ms(created_after, "created_after"),
        created_before=validation.timestamp_ms(created_before, "created_before"),
    )


def list_steps(store: SQLStore, serializer: Serializer, workflow_id: str) -> list[StepInfo]:
    validate_workflow_id(workflow_id)
    if store.get_outcome(workflow_id) is None:
        raise WorkflowNotFound(workflow_id)
    return [StepInfo.from_row(s, serializer) for s in store.list_steps(workflow_id)]


def cancel_workflow(store: SQLStore, workflow_id: str) -> None:
    validate_workflow_id(workflow_id)
    if store.get_outcome(workflow_id) is None:
        raise WorkflowNotFound(workflow_id)
    ids = [workflow_id, *store.descendants(workflow_id)]
    store.set_status(ids, "CANCELLED", ("PENDING", "ENQUEUED"))


def resume_workflow(store: SQLStore, workflow_id: str) -> None:
    """Put a stopped workflow back on its way without running it here: it is re-enqueued on
    its queue (or an internal one) for any worker that knows it."""
    validate_workflow_id(workflow_id)
    outcome = store.get_outcome(workflow_id)
    if outcome is None:
        raise WorkflowNotFound(workflow_id)
    if outcome[0] == "ERROR":
        store.forget_failed_last_step(workflow_id)
    store.requeue_stopped(workflow_id, "_durable_internal")


def fork_workflow(
    store: SQLStore,
    workflow_id: str,
    start_step: int,
    new_id: str | None,
    *,
    executor_id: str | None,
    application_version: str | None,
) -> WorkflowRow:
    validate_workflow_id(workflow_id)
    start_step = validation.step_number(start_step)
    new_id = validation.optional_workflow_id(new_id)
    source = store.get_workflow(workflow_id)
    if source is None:
        raise WorkflowNotFound(workflow_id)
    steps = store.load_steps(workflow_id)
    last = max((s.step_id for s in steps), default=0)
    if start_step > last + 1:
        raise ConfigurationError(
            f"cannot fork workflow {workflow_id!r} at step {start_step}: it has recorded only "
            f"{last} step(s), so start_step can be at most {last + 1}"
        )
    t = store.now_ms()
    new_id = new_id or str(uuid.uuid4())
    local = executor_id is not None and REGISTRY.get(source.name) is not None
    row = WorkflowRow(
        workflow_id=new_id,
        name=source.name,
        status="PENDING" if local else "ENQUEUED",
        queue_name=None if local else (source.queue_name or "_durable_internal"),
        inputs=source.inputs,
        executor_id=executor_id if local else None,
        run_token=uuid.uuid4().hex if local else None,
        application_version=application_version,
        max_recovery_attempts=source.max_recovery_attempts,
        priority=source.priority,
        timeout_ms=source.timeout_ms,
        created_at=t,
        updated_at=t,
        started_at=t if local else None,
        partition_key=None if local else source.partition_key,
    )
    store.fork_workflow(source, row, start_step)
    return row


def garbage_collect(store: SQLStore, older_than: dt.timedelta) -> int:
    if not isinstance(older_than, dt.timedelta) or older_than.total_seconds() < 0:
        raise ConfigurationError("older_than must be a non-negative datetime.timedelta")
    cutoff = store.now_ms() - int(older_than.total_seconds() * 1000)
    deleted = store.garbage_collect(cutoff)
    store.forget_request_keys(cutoff)  # HTTP Idempotency-Keys age out with the workflows
    return deleted


class WorkflowControl:
    """Inspection and control calls that need only the system database: shared by Engine
    (which runs workflows itself) and Client (which does not hold their code)."""

    store: SQLStore
    serializer: Serializer
    notifier: Any
    poll_interval: float

    def _check_ready(self) -> None:
        """Engines raise here until launched; a Client is ready once constructed."""

    def awaiting_result(self, workflow_id: str) -> contextlib.AbstractContextManager[None]:
        """Entered while a caller waits for a workflow's result (``SystemDatabase``): nothing
        to do here; the test engine runs due work and skips time."""
        return contextlib.nullcontext()

    def callers_transaction(self) -> tuple[Any, Any]:
        """The caller's open transaction to join (an Engine with the Django integration)."""
        return None, None

    async def in_callers_thread(self, fn: Callable[[], T]) -> T:
        """``fn()`` where ``callers_transaction`` looks (``SystemDatabase``): here."""
        return fn()

    def retrieve_workflow(self, workflow_id: str) -> WorkflowHandle[Any]:
        """A handle to an existing workflow; ``WorkflowNotFound`` if there is none."""
        self._check_ready()
        validate_workflow_id(workflow_id)
        with in_callers_transaction(self):
            if self.store.get_outcome(workflow_id) is None:
                raise WorkflowNotFound(workflow_id)
        return WorkflowHandle(self, workflow_id)

    def get_workflow_status(self, workflow_id: str) -> WorkflowStatus:
        return self.retrieve_workflow(workflow_id).status()

    def list_workflows(
        self,
        status: str | list[str] | None = None,
        name: str | None = None,
        queue: str | None = None,
        created_after: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
        limit: int | None = 100,
        offset: int = 0,
        newest_first: bool = True,
        after: str | None = None,
        workflow_ids: list[str] | None = None,
    ) -> list[WorkflowStatus]:
        """Workflows matching every filter (``workflow_ids``: only these IDs), newest first by
        default. For deep pages pass ``after=`` the last row's ``cursor`` instead of an
        ``offset``: one index probe, where an offset walks every skipped row."""
        self._check_ready()
        return list_workflows(
            self.store, self.serializer, status, name, queue, created_after, created_before,
            limit, offset, newest_first, after, workflow_ids,
        )  # fmt: skip

    def count_workflows(
        self,
        status: str | list[str] | None = None,
        name: str | None = None,
        queue: str | None = None,
        created_after: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
    ) -> int:
        """How many workflows ``list_workflows`` with these filters would list in all."""
        self._check_ready()
        return count_workflows(self.store, status, name, queue, created_after, created_before)

    def list_steps(self, workflow_id: str) -> list[StepInfo]:
        self._check_ready()
        with in_callers_transaction(self):
            return list_steps(self.store, self.serializer, workflow_id)

    def cancel_workflow(self, workflow_id: str) -> None:
        """Cancel a workflow and its children: they stop at their next step boundary."""
        self._check_ready()
        with in_callers_transaction(self):
            cancel_workflow(self.store, workflow_id)

    def export_workflow(self, workflow_id: str) -> dict[str, Any]:
        """The recorded history of a workflow (inputs, steps and outcomes, children, events,
        messages, streams) as a JSON-ready dict, for ``durable_core.testing.replay``."""
        self._check_ready()
        return export_history(self.store, workflow_id)

    def garbage_collect(self, older_than: dt.timedelta) -> int:
        """Delete finished workflows (and their steps, messages, events, streams) that finished
        more than ``older_than`` ago. Returns how many workflows were deleted."""
        self._check_ready()
        return garbage_collect(self.store, older_than)

    def send(
        self,
        workflow_id: str,
        message: Any,
        topic: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """Send a message to a workflow from outside any workflow."""
        self._check_ready()
        send_outside(self, workflow_id, message, topic, idempotency_key)

    def get_event(self, workflow_id: str, key: str, timeout: float | None = 60) -> Any:
        self._check_ready()
        return get_event_outside(self, workflow_id, key, timeout)

    def read_stream(self, workflow_id: str, key: str, after: int = 0) -> StreamReader:
        """The values workflow ``workflow_id`` writes to stream ``key``, in order; iterate it
        with ``for`` or ``async for``."""
        self._check_ready()
        return StreamReader(self, workflow_id, key, after)

    # -- queues and executors, managed while the fleet runs (see fleet.py) -------------------

    #: An executor whose heartbeat is older than this is shown dead (an Engine's own lease).
    lease_seconds: float = 30.0

    def list_queues(self) -> list[QueueInfo]:
        """Every queue declared here, with stored settings, or holding in-flight work: paused,
        backlog, running, and the limits in force (stored overrides over the declaration)."""
        self._check_ready()
        return fleet.list_queues(self.store)

    def get_queue(self, name: str) -> QueueInfo:
        """One queue as ``list_queues`` shows it (any name: an unknown queue has no work)."""
        self._check_ready()
        return fleet.get_queue(self.store, name)

    def pause_queue(self, name: str) -> QueueInfo:
        """Stop every worker claiming from queue ``name`` until ``resume_queue``: a claim that
        begins after this returns takes nothing. Running workflows go on; enqueues are still
        accepted and wait."""
        self._check_ready()
        return fleet.pause_queue(self.store, name)

    def resume_queue(self, name: str) -> QueueInfo:
        """Undo ``pause_queue``: workers claim from the queue again (woken at once)."""
        self._check_ready()
        return fleet.resume_queue(self.store, name)

    def set_queue_limits(
        self,
        name: str,
        *,
        concurrency: int | None = UNCHANGED,
        worker_concurrency: int | None = UNCHANGED,
        rate_limit: tuple[int, float] | None = UNCHANGED,
    ) -> QueueInfo:
        """Override limits of queue ``name`` fleet-wide, stored in the database: each limit
        given replaces the ``Queue(...)`` declaration until ``reset_queue`` (``None`` lifts
        it); the others are left as they are. Binds every claim that begins after it returns."""
        self._check_ready()
        return fleet.set_queue_limits(self.store, name, concurrency, worker_concurrency, rate_limit)

    def reset_queue(self, name: str) -> QueueInfo:
        """Drop the stored limit overrides of queue ``name``: its declaration is in force
        again. A pause stays paused (``resume_queue`` undoes it)."""
        self._check_ready()
        return fleet.reset_queue(self.store, name)

    def list_executors(
        self, lease_seconds: float | None = None, ids: int = 20
    ) -> list[ExecutorInfo]:
        """Every registered executor, live or dead (heartbeat older than ``lease_seconds``,
        default this engine's lease), with its version and what it runs (counts by workflow
        name and up to ``ids`` of its oldest PENDING workflow IDs)."""
        self._check_ready()
        lease = self.lease_seconds if lease_seconds is None else lease_seconds
        return fleet.list_executors(self.store, lease, ids)

    def resume_workflow(self, workflow_id: str) -> WorkflowHandle[Any]:
        raise NotImplementedError

    def fork_workflow(
        self, workflow_id: str, /, start_step: int, workflow_id_new: str | None = None, **kw: Any
    ) -> WorkflowHandle[Any]:
        raise NotImplementedError

    # -- schedules (schedules.py says what each policy means) ------------------------------------

    def _schedule_runner(self) -> schedules.Runner | None:
        """Who starts a schedule's triggered and backfilled runs: an Engine runs the ones it
        knows itself; a Client (None) enqueues them for the workers."""
        return None

    def _started_schedule_runs(self, rows: list[WorkflowRow]) -> None:
        """Rows a trigger or backfill created (an Engine submits those it owns)."""

    def _schedules_changed(self) -> None:
        """A schedule changed here (an Engine's scheduler looks again at once)."""

    def create_schedule(
        self,
        schedule_id: str,
        workflow: Any,
        cron: str,
        *,
        timezone: str = "UTC",
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
        catchup: str = "latest",
        overlap: str = "skip",
        max_catchup: int = 100,
        paused: bool = False,
    ) -> Schedule:
        """Store a schedule that starts ``workflow`` (a @workflow or its name) with
        ``(scheduled_at, started_at, *args, **kwargs)`` once per tick of ``cron`` in
        ``timezone``, on every worker fleet-wide. ``queue``: enqueue each run there (flow
        control) instead of starting it on the engine that fires the tick. ``catchup``
        (after downtime): "skip", "latest" or "all" (at most ``max_catchup`` runs);
        ``overlap`` (previous run still active): "skip", "allow" or "cancel".
        ``ScheduleConflict`` if the ID is taken."""
        self._check_ready()
        created = schedules.create(
            self.store, self.serializer, schedule_id, workflow, cron, timezone=timezone,
            args=args, kwargs=kwargs, queue=queue, catchup=catchup, overlap=overlap,
            max_catchup=max_catchup, paused=paused,
        )  # fmt: skip
        self._schedules_changed()
        return created

    def list_schedules(self) -> list[Schedule]:
        """Every stored schedule (created ones and ``@scheduled`` ones, ``source="code"``),
        by ID."""
        self._check_ready()
        return schedules.list_all(self.store, self.serializer)

    def get_schedule(self, schedule_id: str) -> Schedule:
        """One schedule; ``ScheduleNotFound`` if there is none."""
        self._check_ready()
        return schedules.get(self.store, self.serializer, schedule_id)

    def update_schedule(self, schedule_id: str, **changes: Any) -> Schedule:
        """Change a schedule: ``workflow``, ``cron``, ``timezone``, ``args``, ``kwargs``,
        ``queue``, ``catchup``, ``overlap``, ``max_catchup``, ``paused``. A new cron or time
        zone counts from now (past ticks of the new timing are not caught up). The cron and
        workflow of a code-defined schedule come from its ``@scheduled`` (ScheduleConflict)."""
        self._check_ready()
        updated = schedules.update(self.store, self.serializer, schedule_id, changes)
        self._schedules_changed()
        return updated

    def pause_schedule(self, schedule_id: str) -> Schedule:
        """Stop firing ticks (fleet-wide, within the schedulers' refresh, about a second)."""
        self._check_ready()
        paused = schedules.set_paused(self.store, self.serializer, schedule_id, True)
        self._schedules_changed()
        return paused

    def resume_schedule(self, schedule_id: str) -> Schedule:
        """Fire again from the next tick; ticks that passed while paused are not caught up."""
        self._check_ready()
        resumed = schedules.set_paused(self.store, self.serializer, schedule_id, False)
        self._schedules_changed()
        return resumed

    def delete_schedule(self, schedule_id: str) -> None:
        """Delete a schedule (its runs stay). A code-defined one is recorded again at the
        next launch of an engine whose code still has it ``@scheduled``."""
        self._check_ready()
        schedules.delete(self.store, schedule_id)
        self._schedules_changed()

    def trigger_schedule(
        self, schedule_id: str, workflow_id: str | None = None
    ) -> WorkflowHandle[Any]:
        """Start one run now (``scheduled_at`` is now), paused or not, whatever the overlap
        policy; it becomes the schedule's latest run."""
        self._check_ready()
        runner = self._schedule_runner()
        created = schedules.trigger(self.store, self.serializer, schedule_id, runner, workflow_id)
        self._started_schedule_runs(created)
        if workflow_id is None and created:
            workflow_id = created[0].workflow_id
        assert workflow_id is not None
        return WorkflowHandle(self, workflow_id, created=bool(created))

    def backfill_schedule(
        self, schedule_id: str, start: dt.datetime, end: dt.datetime
    ) -> list[WorkflowHandle[Any]]:
        """Start a run for every tick in ``[start, end)`` (aware datetimes), at most
        ``schedules.MAX_BACKFILL``; a tick that already ran keeps its run and is not run
        again. Returns a handle per tick, oldest first."""
        self._check_ready()
        runner = self._schedule_runner()
        ids, created = schedules.backfill(
            self.store, self.serializer, schedule_id, start, end, runner
        )
        self._started_schedule_runs(created)
        new = {row.workflow_id for row in created}
        return [WorkflowHandle(self, i, created=i in new) for i in ids]

    # -- the asyncio twins: a short database call in a worker thread; waits hold no thread ------

    async def retrieve_workflow_async(self, workflow_id: str) -> WorkflowHandle[Any]:
        return await asyncio.to_thread(self.retrieve_workflow, workflow_id)

    async def get_workflow_status_async(self, workflow_id: str) -> WorkflowStatus:
        return await asyncio.to_thread(self.get_workflow_status, workflow_id)

    async def list_workflows_async(
        self,
        status: str | list[str] | None = None,
        name: str | None = None,
        queue: str | None = None,
        created_after: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
        limit: int | None = 100,
        offset: int = 0,
        newest_first: bool = True,
        after: str | None = None,
        workflow_ids: list[str] | None = None,
    ) -> list[WorkflowStatus]:
        return await asyncio.to_thread(
            self.list_workflows, status, name, queue, created_after, created_before, limit,
            offset, newest_first, after, workflow_ids,
        )  # fmt: skip

    async def count_workflows_async(
        self,
        status: str | list[str] | None = None,
        name: str | None = None,
        queue: str | None = None,
        created_after: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
    ) -> int:
        return await asyncio.to_thread(
            self.count_workflows, status, name, queue, created_after, created_before
        )

    async def list_steps_async(self, workflow_id: str) -> list[StepInfo]:
        return await asyncio.to_thread(self.list_steps, workflow_id)

    async def cancel_workflow_async(self, workflow_id: str) -> None:
        await asyncio.to_thread(self.cancel_workflow, workflow_id)

    async def resume_workflow_async(self, workflow_id: str) -> WorkflowHandle[Any]:
        return await asyncio.to_thread(self.resume_workflow, workflow_id)

    async def fork_workflow_async(
        self, workflow_id: str, /, start_step: int, workflow_id_new: str | None = None, **kw: Any
    ) -> WorkflowHandle[Any]:
        return await asyncio.to_thread(
            functools.partial(self.fork_workflow, workflow_id, start_step, workflow_id_new, **kw)
        )

    async def list_queues_async(self) -> list[QueueInfo]:
        return await asyncio.to_thread(self.list_queues)

    async def get_queue_async(self, name: str) -> QueueInfo:
        return await asyncio.to_thread(self.get_queue, name)

    async def pause_queue_async(self, name: str) -> QueueInfo:
        return await asyncio.to_thread(self.pause_queue, name)

    async def resume_queue_async(self, name: str) -> QueueInfo:
        return await asyncio.to_thread(self.resume_queue, name)

    async def set_queue_limits_async(
        self,
        name: str,
        *,
        concurrency: int | None = UNCHANGED,
        worker_concurrency: int | None = UNCHANGED,
        rate_limit: tuple[int, float] | None = UNCHANGED,
    ) -> QueueInfo:
        return await asyncio.to_thread(
            functools.partial(
                self.set_queue_limits,
                name,
                concurrency=concurrency,
                worker_concurrency=worker_concurrency,
                rate_limit=rate_limit,
            )
        )

    async def reset_queue_async(self, name: str) -> QueueInfo:
        return await asyncio.to_thread(self.reset_queue, name)

    async def list_executors_async(
        self, lease_seconds: float | None = None, ids: int = 20
    ) -> list[ExecutorInfo]:
        return await asyncio.to_thread(self.list_executors, lease_seconds, ids)

    async def export_workflow_async(self, workflow_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.export_workflow, workflow_id)

    async def garbage_collect_async(self, older_than: dt.timedelta) -> int:
        return await asyncio.to_thread(self.garbage_collect, older_than)

    async def create_schedule_async(
        self, schedule_id: str, workflow: Any, cron: str, **options: Any
    ) -> Schedule:
        call = functools.partial(self.create_schedule, schedule_id, workflow, cron, **options)
        return await asyncio.to_thread(call)

    async def list_schedules_async(self) -> list[Schedule]:
        return await asyncio.to_thread(self.list_schedules)

    async def get_schedule_async(self, schedule_id: str) -> Schedule:
        return await asyncio.to_thread(self.get_schedule, schedule_id)

    async def update_schedule_async(self, schedule_id: str, **changes: Any) -> Schedule:
        return await asyncio.to_thread(
            functools.partial(self.update_schedule, schedule_id, **changes)
        )

    async def pause_schedule_async(self, schedule_id: str) -> Schedule:
        return await asyncio.to_thread(self.pause_schedule, schedule_id)

    async def resume_schedule_async(self, schedule_id: str) -> Schedule:
        return await asyncio.to_thread(self.resume_schedule, schedule_id)

    async def delete_schedule_async(self, schedule_id: str) -> None:
        await asyncio.to_thread(self.delete_schedule, schedule_id)

    async def trigger_schedule_async(
        self, schedule_id: str, workflow_id: str | None = None
    ) -> WorkflowHandle[Any]:
        return await asyncio.to_thread(self.trigger_schedule, schedule_id, workflow_id)

    async def backfill_schedule_async(
        self, schedule_id: str, start: dt.datetime, end: dt.datetime
    ) -> list[WorkflowHandle[Any]]:
        return await asyncio.to_thread(self.backfill_schedule, schedule_id, start, end)

    async def send_async(
        self,
        workflow_id: str,
        message: Any,
        topic: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        await asyncio.to_thread(self.send, workflow_id, message, topic, idempotency_key)

    async def get_event_async(self, workflow_id: str, key: str, timeout: float | None = 60) -> Any:
        """``get_event`` without holding a thread while it waits."""
        await asyncio.to_thread(self._check_ready)
        return await run_async(get_event_plan(self, workflow_id, key, timeout))

    async def read_stream_async(
        self, workflow_id: str, key: str, after: int = 0
    ) -> AsyncIterator[Any]:
        """``async for value in read_stream_async(...)``: the stream without holding a thread."""
        reader = await asyncio.to_thread(self.read_stream, workflow_id, key, after)
        async for value in reader:
            yield value
