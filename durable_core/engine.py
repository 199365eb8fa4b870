"""The Engine: launch, start, recover and shut down workflows; the module-level shortcuts."""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar, cast, overload

from . import context as ctxmod
from . import observability, recovery, runtime, validation
from .alerts import Alerts, DeadLetterHook, ExecutorLostHook, QueueStuckHook, WorkflowFailedHook
from .clock import Clock, DatabaseClock
from .context import Aborted, Suspend
from .control import WorkflowControl, fork_workflow, resume_workflow
from .errors import (
    ConfigurationError,
    EngineNotRunning,
    WorkflowConflict,
    WorkflowNotFound,
)
from .execution import (
    OutcomeNotRecorded,
    StepHooks,
    execute_async,
    execute_sync,
    start_child,
    unwinds,
)
from .handles import WorkflowHandle
from .heartbeat import Heartbeat
from .parking import ParkingLot
from .queues import QueueWorker
from .registry import REGISTRY, Workflow, WorkflowDef, resolve_workflow
from .retention import Retention, retention_policies
from .runtime import Execution
from .scheduler import Scheduler
from .schedules import Runner
from .serialization import Serializer, encode_arguments, make_serializer
from .store import (
    SQLStore,
    StepRow,
    WorkflowRow,
    open_store,
    parse_database_url,
    resolve_database_url,
)
from .threads import WorkerPool
from .timers import Timers
from .transactions import (
    CallersTransaction,
    SQLAlchemyTransactions,
    TransactionAdapter,
    TransactionTimeouts,
)
from .wakeups import Notifier, PostgresListener, SQLiteWatcher

log = logging.getLogger("durable_core.engine")

R = TypeVar("R")
T = TypeVar("T")

_live_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def set_default_engine(engine: Engine | None) -> None:
    """Make ``engine`` the one that module-level calls outside a workflow act on."""
    runtime.set_default_engine(engine)


def get_default_engine() -> Engine:
    """The engine that module-level calls outside a workflow act on."""
    return cast(Engine, runtime.get_default_engine())


def _shutdown_all_at_exit() -> None:
    for engine in list(_live_engines):
        try:
            engine.shutdown(timeout=0)
        except Exception:
            log.exception("engine %s: shutdown at interpreter exit failed", engine.executor_id)


# At interpreter exit, threading's exit hooks run (and non-daemon threads are joined) before
# ``atexit`` handlers. Shutting engines down from that first hook cancels queued workflows
# and stops running ones at their next step; a step still running then does not hold the
# exit either, as the engine's pool threads are daemons (threads.py).
_register_thread_exit = getattr(threading, "_register_atexit", None)
if _register_thread_exit is not None:
    _register_thread_exit(_shutdown_all_at_exit)
atexit.register(_shutdown_all_at_exit)


class Engine(WorkflowControl):
    """Runs workflows against one system database.

    Parameters:
        database_url: the system database (``sqlite:///file`` or ``postgresql://…``);
            ``DURABLE_DATABASE_URL`` overrides the default.
        app_database: where ``@transaction`` steps run: a SQLAlchemy Engine or URL; None means
            the system database.
        executor_id: the stable name of this worker process; set it (e.g. from the
            environment) so a restarted process recovers its own work at once. The default is
            unique per process; its work is adopted by live workers when its lease expires.
        application_version: recovery and dequeue take workflows of this version (and
            unversioned ones). Default: a digest of the registered workflows' source.
        serializer: "json" (default), "pickle" or an object with dumps/loads.
        queues: queue names this process dequeues from; None = all declared; [] = none.
        lease_seconds: an executor whose heartbeat is older than this is presumed dead.
        max_workers: threads for sync workflows (waiting workflows give theirs back).
        suspend_threshold: a sync wait longer than this many seconds releases its thread.
        hold_history, hold_seconds: a sync workflow with at least ``hold_history`` recorded
            entries (steps, waits; default 64) whose wait outlasts the threshold is *held*
            instead of parked, for up to ``hold_seconds`` (default 30; 0 never holds): its
            thread leaves the pool and a wake-up within that time continues it without
            replaying its history (a ``recv``/``get_event``/child wait of any length, a
            ``sleep`` that ends within ``hold_seconds``). Parking replays the whole body at
            the wake-up, O(history). Held and parked workflows hold no ``max_workers`` slot; a
            parked dequeued one gives back its ``worker_concurrency`` slot (a held one keeps
            it, for at most ``hold_seconds``).
        checkpoint_delay: how long a sync workflow's last plain step checkpoint may wait
            while the body runs code outside steps (default 0.5 s): written with the
            workflow's outcome if the body returns first (one round trip instead of two),
            else before the next durable call or by the maintenance pass once this old. A
            crash in that window runs the step again (plain steps are at-least-once); 0
            writes every checkpoint at once, the strictest window, for bodies that do slow
            work between steps.
        pool_size: the most PostgreSQL connections this engine's pool opens (plus one for
            LISTEN and one kept for the lease's heartbeat, so that steps holding every pooled
            connection never starve it); idle ones are closed after a minute. Default:
            ``min(max_workers, 16)``, and 4 for an engine that only starts workflows (``queues=[]`` and no scheduler,
            as in a web process). See the README's connection budget.
        deadline_interval: seconds between checks for workflows past their ``timeout``
            (default 0.5; each check is one index probe). 0 turns them off in this engine,
            safe when other engines (workers) run them.
        adopt_interval: seconds between scans for work whose executor's lease expired
            (default ``min(heartbeat_seconds, lease_seconds / 3)``). 0 turns adoption off in
            this engine, safe when other engines (workers) adopt.
        forget_executors_after: seconds a dead executor's row stays in the executors listing
            after its last heartbeat (default 86400, a day, so that last night's crash is
            still there in the morning); the maintenance loop deletes it then, once none of
            its workflows is PENDING (all adopted). 0 keeps dead rows until their executor ID
            is taken again. A clean shutdown deletes its own row at once.
        clock: where every time compared across processes comes from (leases, heartbeats,
            deadlines, rate windows, delays, durable sleeps). Default: a ``DatabaseClock``,
            the database server's clock, recalibrated at launch and at every heartbeat, so
            host clock skew changes nothing. Tests pass their own (see ``clock.Clock``).
        migrate: whether ``launch()`` may apply missing schema migrations (to the system
            database, and to the application database's ``durable_transaction_outputs`` at
            the first ``@transaction``). Default True, convenient for SQLite and development.
            On a current schema launch runs no DDL either way, so a role with DML rights only
            can launch; with False, a schema behind this code is refused (run ``durable
            migrate [--app-database URL]`` at deploy time).
        on_workflow_failed, on_dead_letter, on_queue_stuck, on_executor_lost: alert hooks
            (see ``durable_core.alerts``); ``queue_stuck_after`` is the seconds a queue's
            oldest claimable workflow may wait before ``on_queue_stuck`` (and an ERROR log).
        recover: recover this executor's PENDING work at launch, and every heartbeat interval
            run again what is PENDING here but held by no execution in this process (a claim
            whose reply was lost). Default True.
        transactions: the adapter that runs ``@transaction`` steps (a
            ``transactions.TransactionAdapter``); default: SQLAlchemy on ``app_database``.
        transaction_timeouts: lock and idle limits of a ``@transaction`` step's transaction
            on PostgreSQL (``transactions.TransactionTimeouts`` or ``{"lock": s, "idle": s}``;
            default 10 s and 60 s): a frozen worker cannot hold its locks for ever.
    """

    def __init__(
        self,
        database_url: str | None = None,
        app_database: Any = None,
        executor_id: str | None = None,
        application_version: str | None = None,
        serializer: str | Serializer = "json",
        queues: list[str] | None = None,
        *,
        lease_seconds: float = 30.0,
        heartbeat_seconds: float = 10.0,
        max_workers: int = 64,
        suspend_threshold: float = 1.0,
        hold_history: int = 64,
        hold_seconds: float = 30.0,
        checkpoint_delay: float = 0.5,
        poll_interval: float | None = None,
        pool_size: int | None = None,
        deadline_interval: float = 0.5,
        adopt_interval: float | None = None,
        forget_executors_after: float = 86400.0,
        transactions: TransactionAdapter | None = None,
        transaction_timeouts: TransactionTimeouts | dict[str, Any] | None = None,
        run_scheduler: bool = True,
        recover: bool = True,
        clock: Clock | None = None,
        migrate: bool = True,
        on_workflow_failed: WorkflowFailedHook | None = None,
        on_dead_letter: DeadLetterHook | None = None,
        on_queue_stuck: QueueStuckHook | None = None,
        queue_stuck_after: float | None = None,
        on_executor_lost: ExecutorLostHook | None = None,
        retention: Retention | Sequence[Retention] | None = None,
    ) -> None:
        self.database_url = resolve_database_url(database_url)
        self.url = parse_database_url(self.database_url)
        self.app_database = app_database
        self.executor_id = (
            executor_id
            or os.environ.get("DURABLE_EXECUTOR_ID")
            or (f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        )
        self._explicit_version = application_version
        self.application_version = application_version or ""
        self.serializer = make_serializer(serializer)
        self.queue_names = queues
        if lease_seconds <= 0 or heartbeat_seconds <= 0 or heartbeat_seconds >= lease_seconds:
            raise ConfigurationError("need 0 < heartbeat_seconds < lease_seconds")
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.max_workers = max_workers
        self.suspend_threshold = suspend_threshold
        if hold_history < 0 or hold_seconds < 0:
            raise ConfigurationError("hold_history and hold_seconds must be >= 0")
        self.hold_history = hold_history
        self.hold_seconds = hold_seconds
        if checkpoint_delay < 0:
            raise ConfigurationError(f"checkpoint_delay must be >= 0, got {checkpoint_delay!r}")
        self.checkpoint_delay = checkpoint_delay
        self.poll_interval = poll_interval or (5.0 if self.url.dialect == "postgresql" else 1.0)
        if pool_size is not None and pool_size < 1:
            raise ConfigurationError(f"pool_size must be at least 1, got {pool_size!r}")
        starts_only = queues == [] and not run_scheduler
        self.pool_size = pool_size or (4 if starts_only else max(1, min(max_workers, 16)))
        if deadline_interval < 0 or (adopt_interval is not None and adopt_interval < 0):
            raise ConfigurationError("deadline_interval and adopt_interval must be >= 0")
        self.deadline_interval = deadline_interval
        self.adopt_interval = (
            min(heartbeat_seconds, lease_seconds / 3) if adopt_interval is None else adopt_interval
        )
        if forget_executors_after < 0:
            raise ConfigurationError("forget_executors_after must be >= 0 (0: never)")
        self.forget_executors_after = forget_executors_after
        self.run_scheduler = run_scheduler
        self.recover_on_launch = recover
        self.clock: Clock = clock if clock is not None else DatabaseClock()
        self.migrate_on_launch = migrate
        self.notifier = Notifier()
        self._transactions_override = transactions
        self.store: SQLStore = None  # type: ignore[assignment]
        self._transactions: TransactionAdapter | None = None
        self.transaction_timeouts = TransactionTimeouts.of(transaction_timeouts)
        self._running: dict[str, Execution] = {}
        self._launched = False
        self._stopping = threading.Event()
        self.parking = ParkingLot(self)
        self._pool: WorkerPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._listener: PostgresListener | None = None
        self._watcher: SQLiteWatcher | None = None
        self._timers: Timers | None = None
        self._threads: list[threading.Thread] = []
        self._inflight = 0
        self._inflight_cond = threading.Condition()
        # workflow ID -> executions handed off (see runs_here())
        self._handed_off: dict[str, int] = {}
        self.queue_worker: Any = None
        self.scheduler: Any = None
        #: This engine's lease: heartbeats, and whether it may judge others' (heartbeat.py).
        self.heartbeat = Heartbeat(self)
        #: Test tooling's view of every step that runs (see ``durable_core.testing``).
        self.step_hooks: StepHooks | None = None
        #: The application's alert hooks (see ``durable_core.alerts``).
        self.alerts = Alerts(
            on_workflow_failed, on_dead_letter, on_queue_stuck, queue_stuck_after, on_executor_lost
        )
        #: The queue-stuck / executor-lost watch of the current launch (``recovery.FleetWatch``).
        self.fleet_watch: Any = None
        #: Retention policies the maintenance loop applies (see ``durable_core.retention``).
        self.retention = retention_policies(retention)
        self._launch_lock = threading.RLock()  # launch() recovers, which may create the loop

    def __repr__(self) -> str:
        return f"Engine({self.url.redacted!r}, executor_id={self.executor_id!r})"

    # -- lifecycle -------------------------------------------------------------------------

    def launch(self) -> Engine:
        """Check the schema version (with ``migrate=True``, bring it up to date; no DDL when
        it is current), take the lease on this executor ID, recover this executor's pending
        work, start queue workers and the scheduler. Idempotent; an engine that was shut down
        can be launched again.

        Raises ``ExecutorIdInUse`` when another live process holds this executor ID."""
        with self._launch_lock:
            if self._launched:
                return self
            self._begin_launch()
            self.application_version = self._explicit_version or REGISTRY.version_digest()
            self.store = open_store(
                self.url,
                pool_size=self.pool_size,
                application_name=f"durable {self.executor_id}",
                clock=self.clock,
            )
            try:
                self.store.on_commit = self.notifier.notify
                self.store.ensure_schema(self.migrate_on_launch)
                self.heartbeat = Heartbeat(self)
                self.heartbeat.register()
                self.fleet_watch = recovery.FleetWatch(self)  # watches from this launch on
            except BaseException:
                self.store.close()
                raise
            # Daemon threads: a step still running past the shutdown timeout never holds the
            # interpreter's exit (see threads.py); its workflow is recovered later.
            self._pool = WorkerPool(self.max_workers, thread_name_prefix="durable-workflow")
            self._timers = Timers(self.clock)
            if self._on_signal not in self.notifier.listeners:
                self.notifier.listeners.append(self._on_signal)
            if self.queue_names != []:  # it serves queues: their wake-ups are for it
                self.notifier.listen_queues = True
            if self.url.dialect == "postgresql":
                self._listener = PostgresListener(
                    self.store.conninfo, self.notifier, f"durable {self.executor_id}"
                )
                self._listener.start()
            else:
                self._watcher = SQLiteWatcher(self.store, self.notifier)
                self._watcher.start()
            self._launched = True
            _live_engines.add(self)
            runtime.set_default_engine_if_unset(self)
            stopping, heartbeat = self._stopping, self.heartbeat
            self._start_thread(lambda: heartbeat.run(stopping), "durable-heartbeat")
            self._start_thread(
                lambda: recovery.maintenance_loop(self, stopping), "durable-maintenance"
            )
            if self.recover_on_launch:
                # Before the queue worker starts: a workflow it claims for this executor must
                # not look like leftover work and be run a second time by recovery.
                self.recover_pending()
            self.queue_worker = QueueWorker(self)
            self.queue_worker.start()
            if self.run_scheduler:
                self.scheduler = Scheduler(self)
                self.scheduler.start()
        log.info(
            "engine %s launched on %s (version %s)",
            self.executor_id,
            self.url.redacted,
            self.application_version,
        )
        return self

    def _begin_launch(self) -> None:
        """Fresh per-launch state, so that a launch after a shutdown works like the first."""
        self._stopping = threading.Event()
        self._threads = []
        self.parking = ParkingLot(self)
        self.queue_worker = None
        self.scheduler = None
        self._listener = None
        self._watcher = None
        # Executions of the previous launch still running past its shutdown timeout were
        # told to stop; they must not keep recovery from taking their workflows again.
        for workflow_id, ctx in list(self._running.items()):
            if ctx.cancel_event.is_set():
                self._running.pop(workflow_id, None)

    def renew_lease(self) -> None:
        """Renew this executor's lease now (the heartbeat thread does so regularly)."""
        self.heartbeat.beat()

    def may_judge_leases(self) -> bool:
        """Whether this engine has been in contact with the database for a full lease, so
        that others' stale heartbeats mean they are dead (see heartbeat.py)."""
        return self.heartbeat.may_judge_others()

    @property
    def transactions(self) -> TransactionAdapter:
        """The adapter for @transaction steps, created at first use."""
        if self._transactions is None:
            with self._launch_lock:
                if self._transactions is None:
                    if self._transactions_override is not None:
                        self._transactions = self._transactions_override
                    else:
                        target = self.app_database or self.url.sqlalchemy
                        self._transactions = SQLAlchemyTransactions(
                            target,
                            self.serializer,
                            migrate=self.migrate_on_launch,
                            timeouts=self.transaction_timeouts,
                            pool_size=self.max_workers,
                        )
        return self._transactions

    def _start_thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def shutdown(self, timeout: float = 30) -> None:
        """Stop taking work and let running workflows reach their end (or their next
        checkpoint) for up to ``timeout`` seconds; what is left is recovered later.

        Bounded: past ``timeout``, statements that fail for want of the database are no longer
        retried, and every thread is joined with a timeout. Calling it again is harmless."""
        with self._launch_lock:
            if not self._launched:
                return
            self._launched = False
            self._stop(max(timeout, 0))
        log.info("engine %s shut down", self.executor_id)

    def _stop(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self.store.give_up_retrying_after(timeout)
        if self.queue_worker is not None:
            self.queue_worker.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        with self._inflight_cond:
            while self._inflight > 0 and time.monotonic() < deadline:
                self._inflight_cond.wait(min(0.2, max(deadline - time.monotonic(), 0.01)))
        for ctx in list(self._running.values()):
            ctx.cancel_event.set()  # stops at the next step boundary; recovery resumes it
        if self._timers is not None:
            self._timers.stop()
        if self._listener is not None:
            self._listener.stop()
        if self._watcher is not None:
            self._watcher.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None  # a later launch starts a new loop
        for thread in self._threads:  # the heartbeat first: it must not renew after removal
            thread.join(timeout=1)
        try:
            # With work left over, the lease is kept: it expires, and the work is adopted,
            # only after executions that outlived the timeout were told to stop.
            if not self._inflight and not self.parking.parked:
                self.store.remove_executor(self.executor_id)
        except Exception as exc:
            log.warning(
                "engine %s could not remove its executor row (%s: %s); its lease expires",
                self.executor_id,
                type(exc).__name__,
                exc,
            )
        try:
            self.store.close()
        except Exception:
            pass
        _live_engines.discard(self)
        runtime.clear_default_engine(self)

    def __enter__(self) -> Engine:
        return self.launch()

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    async def __aenter__(self) -> Engine:
        return await self.launch_async()

    async def __aexit__(self, *exc: Any) -> None:
        await self.shutdown_async()

    async def launch_async(self) -> Engine:
        """``launch()`` from async code (in a worker thread: it migrates and recovers)."""
        return await asyncio.to_thread(self.launch)

    async def shutdown_async(self, timeout: float = 30) -> None:
        """``shutdown()`` from async code, without blocking the event loop."""
        await asyncio.to_thread(self.shutdown, timeout)

    def _check_ready(self) -> None:
        self.require_launched()

    def require_launched(self) -> None:
        """Raise unless launched. Integration hook: an engine that launches lazily (Django's
        web processes) overrides it to launch at first use."""
        if not self._launched:
            raise EngineNotRunning(f"{self!r} is not launched; call engine.launch() first.")

    @property
    def launched(self) -> bool:
        """True between ``launch()`` and ``shutdown()``."""
        return self._launched

    @property
    def stopping(self) -> threading.Event:
        """Set once shutdown begins."""
        return self._stopping

    @property
    def inflight(self) -> int:
        """Executions holding a thread or a task here now (parked ones do not count)."""
        return self._inflight

    @property
    def timers(self) -> Timers | None:
        return self._timers

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The engine's own event loop, where async workflows started in the background run."""
        if self._loop is None:
            with self._launch_lock:
                if self._loop is None:
                    loop = asyncio.new_event_loop()
                    ready = threading.Event()

                    def run() -> None:
                        asyncio.set_event_loop(loop)
                        loop.call_soon(ready.set)
                        loop.run_forever()

                    thread = threading.Thread(target=run, name="durable-asyncio", daemon=True)
                    thread.start()
                    ready.wait()
                    self._loop_thread = thread
                    self._loop = loop
        return self._loop

    # -- creating and running --------------------------------------------------------------

    def create_workflow(
        self,
        defn: WorkflowDef,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        workflow_id: str | None = None,
        parent: Execution | None = None,
        timeout: float | None = None,
        queue: str | None = None,
        priority: int | None = None,
        deduplication_id: str | None = None,
        delay: float | None = None,
        partition_key: str | None = None,
        conn: Any = None,
    ) -> tuple[WorkflowRow, bool]:
        """Store a new workflow (PENDING and owned here, or ENQUEUED). Returns the row and
        whether this call created it; an existing ID of the same name is returned as is."""
        row = self.workflow_row(
            defn,
            args,
            kwargs,
            workflow_id=workflow_id,
            parent=parent,
            timeout=timeout,
            queue=queue,
            priority=priority,
            deduplication_id=deduplication_id,
            delay=delay,
            partition_key=partition_key,
        )
        created = self.store.insert_workflow(row, conn=conn)
        if created:
            return row, True
        existing = self.store.get_workflow(row.workflow_id)
        if existing is None:  # deleted in between; extremely unlikely
            raise WorkflowNotFound(row.workflow_id)
        if existing.name != defn.name:
            raise WorkflowConflict(row.workflow_id, existing.name, defn.name)
        return existing, False

    def workflow_row(
        self,
        defn: WorkflowDef,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        workflow_id: str | None = None,
        parent: Execution | None = None,
        timeout: float | None = None,
        queue: str | None = None,
        priority: int | None = None,
        deduplication_id: str | None = None,
        delay: float | None = None,
        partition_key: str | None = None,
    ) -> WorkflowRow:
        """The row a new workflow is stored as (validated and encoded, not yet stored)."""
        self.require_launched()
        workflow_id = validation.optional_workflow_id(workflow_id) or str(uuid.uuid4())
        timeout = validation.timeout_seconds(timeout)
        delay = validation.delay_seconds(delay)
        priority = validation.priority(priority)
        deduplication_id = validation.deduplication_id(deduplication_id)
        inputs = encode_arguments(self.serializer, defn.name, args, kwargs)
        t = self.clock.now_ms()
        timeout_ms = None if timeout is None else int(timeout * 1000)
        deadline = None
        if queue is None and timeout_ms is not None:
            deadline = t + timeout_ms
        if parent is not None and parent.deadline_ms is not None:
            deadline = parent.deadline_ms if deadline is None else min(deadline, parent.deadline_ms)
        enqueued = queue is not None
        row = WorkflowRow(
            workflow_id=workflow_id,
            name=defn.name,
            status="ENQUEUED" if enqueued else "PENDING",
            queue_name=queue,
            inputs=inputs,
            executor_id=None if enqueued else self.executor_id,
            run_token=None if enqueued else uuid.uuid4().hex,
            application_version=self.application_version,
            max_recovery_attempts=defn.max_recovery_attempts,
            parent_workflow_id=parent.workflow_id if parent else None,
            priority=priority,
            deduplication_id=deduplication_id,
            not_before=None if not delay else t + int(delay * 1000),
            timeout_ms=timeout_ms,
            deadline=deadline,
            created_at=t,
            updated_at=t,
            started_at=None if enqueued else t,
            trace_context=observability.current_trace_context(),
            partition_key=validation.partition_key(partition_key) if enqueued else None,
        )
        return row

    def track_inflight(self, delta: int, workflow_id: str | None = None) -> None:
        with self._inflight_cond:
            self._inflight += delta
            if workflow_id is not None:
                held = self._handed_off.get(workflow_id, 0) + delta
                if held > 0:
                    self._handed_off[workflow_id] = held
                else:
                    self._handed_off.pop(workflow_id, None)
            if not self._inflight:
                self._inflight_cond.notify_all()

    def submit(
        self,
        defn: WorkflowDef,
        row: WorkflowRow,
        steps: list[StepRow] | None,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        """Run a workflow this process owns in the background (pool thread or engine loop)."""
        self.track_inflight(1, row.workflow_id)
        if defn.is_async:
            asyncio.run_coroutine_threadsafe(self._run_async(defn, row, steps, on_done), self.loop)
        else:
            assert self._pool is not None
            try:
                self._pool.submit(self.run_sync, defn, row, steps, on_done)
            except RuntimeError:  # pool shut down: leave it for recovery
                self.track_inflight(-1, row.workflow_id)

    def run_sync(
        self,
        defn: WorkflowDef,
        row: WorkflowRow,
        steps: list[StepRow] | None,
        on_done: Callable[[], None] | None,
    ) -> None:
        try:
            if steps is None:
                steps = self.store.load_steps(row.workflow_id)
            execute_sync(self, defn, row, steps, can_suspend=True)
        except Suspend as suspended:
            # Parked, a dequeued workflow gives back its worker_concurrency slot (the finally
            # below): one waiting days for a message must not stop the queue on this worker.
            self.park(defn, row.workflow_id, suspended)
        except Aborted:
            self._recheck_after_abort(defn, row)
        except OutcomeNotRecorded:
            pass  # logged where it failed; this executor's sweep runs the workflow again
        except BaseException as exc:
            # Anything else was recorded as the workflow's error by execute_sync; only what
            # unwinds untouched is not, and it is logged (recovery resumes the workflow).
            if unwinds(exc):
                log.warning(
                    "workflow %s interrupted (%r); it will be recovered", row.workflow_id, exc
                )
        finally:
            self.track_inflight(-1, row.workflow_id)
            if on_done is not None:
                on_done()

    async def _run_async(
        self,
        defn: WorkflowDef,
        row: WorkflowRow,
        steps: list[StepRow] | None,
        on_done: Callable[[], None] | None,
    ) -> None:
        try:
            recorded: list[StepRow] | None = steps
            if recorded is None:
                recorded = await asyncio.to_thread(self.store.load_steps, row.workflow_id)
            await execute_async(self, defn, row, recorded)
        except Aborted:
            await asyncio.to_thread(self._recheck_after_abort, defn, row)
        except OutcomeNotRecorded:
            pass  # logged where it failed; this executor's sweep runs the workflow again
        except BaseException as exc:
            if unwinds(exc):  # a cancelled task (engine shutdown): recovery resumes it
                log.warning(
                    "workflow %s interrupted (%r); it will be recovered", row.workflow_id, exc
                )
                raise
            # anything else was recorded as the workflow's error by execute_async
        finally:
            self.track_inflight(-1, row.workflow_id)
            if on_done is not None:
                on_done()

    def _recheck_after_abort(self, defn: WorkflowDef, row: WorkflowRow) -> None:
        """An execution stopped because a checkpoint was refused. Usually the workflow was
        cancelled or recovered elsewhere; if it is in fact still ours (a retried statement
        whose first attempt had committed), replay it from its record shortly."""
        if self._stopping.is_set():
            return
        try:
            current = self.store.get_workflow(row.workflow_id)
        except Exception as exc:
            log.warning(
                "workflow %s: could not re-check ownership after an aborted checkpoint (%s); "
                "this executor's sweep will find it",
                row.workflow_id,
                exc,
            )
            return
        if current is None or current.status != "PENDING" or current.run_token != row.run_token:
            return
        log.info(
            "workflow %s is still owned here after an aborted checkpoint; replaying",
            row.workflow_id,
        )
        if self._timers is not None:
            self._timers.call_at(self.clock.time() + 0.1, lambda: self.submit(defn, current, None))

    def run_in_pool(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on a workflow thread; RuntimeError once the pool is shut down."""
        if self._pool is None:
            raise RuntimeError("the engine's pool is not running")
        self._pool.submit(fn)

    def run_inline(self, defn: WorkflowDef, row: WorkflowRow) -> Any:
        """A direct call: run in the caller's thread and return the result."""
        try:
            with self.awaiting_result(row.workflow_id):  # the caller waits for its result
                return execute_sync(self, defn, row, [], can_suspend=False)
        except Aborted:
            return self.retrieve_workflow(row.workflow_id).result()

    def _on_signal(self, kind: str, ident: str) -> None:
        if kind == "c":
            ctx = self._running.get(ident)
            if ctx is not None and self._launched:
                threading.Thread(target=self._check_cancelled, args=(ctx,), daemon=True).start()

    def _check_cancelled(self, ctx: Execution) -> None:
        row = self.store.get_outcome(ctx.workflow_id)
        if row is None or row[0] != "PENDING":
            ctx.cancel_event.set()

    def expire_deadline(self, workflow_id: str) -> None:
        self.store.expire_deadlines()

    def register_execution(self, ctx: Execution) -> None:
        self._running[ctx.workflow_id] = ctx

    def unregister_execution(self, ctx: Execution) -> None:
        if self._running.get(ctx.workflow_id) is ctx:
            del self._running[ctx.workflow_id]

    def runs_here(self, workflow_id: str) -> bool:
        """Whether an execution in this process has the workflow: running, handed to the
        pool or the loop but not started yet, or parked while it waits."""
        with self._inflight_cond:
            if workflow_id in self._handed_off:
                return True
        return workflow_id in self._running or workflow_id in self.parking.parked

    def step_boundary(self) -> None:
        # An integration's adapter tidies up around each step body (Django closes stale
        # connections there); the default SQLAlchemy adapter has nothing to do.
        if self._transactions_override is not None:
            self._transactions_override.step_boundary()

    # -- waiting off-thread and recovery (parking.py, recovery.py) ----------------------------

    def park(self, defn: WorkflowDef, workflow_id: str, suspended: Suspend) -> None:
        self.parking.park(defn, workflow_id, suspended)

    def detach_thread(self) -> bool:
        return self._pool is not None and self._pool.detach_current()

    def hold_warm(
        self, ctx: Execution, keys: Sequence[Any], seen: Sequence[int], deadline: float
    ) -> bool:
        return self.parking.hold(ctx, keys, seen, deadline)

    def in_thread_wait(self) -> AbstractContextManager[bool]:
        return self.parking.in_thread_wait()

    def poll_parked(self) -> None:
        self.parking.poll()

    def write_deferred_checkpoints(self, older_than: float) -> None:
        cutoff = time.monotonic() - older_than
        for ctx in list(self._running.values()):
            if ctx.pending is not None and ctx.pending_since <= cutoff:
                try:
                    ctx.write_pending()
                except Aborted:  # no longer ours: it stops at its next step boundary
                    ctx.cancel_event.set()

    def recover_pending(self, executor_id: str | None = None) -> list[WorkflowHandle[Any]]:
        """Recover the PENDING workflows of this executor (or of ``executor_id``)."""
        self.require_launched()
        return recovery.recover_executor(self, executor_id or self.executor_id)

    async def recover_pending_async(
        self, executor_id: str | None = None
    ) -> list[WorkflowHandle[Any]]:
        return await asyncio.to_thread(self.recover_pending, executor_id)

    async def adopt_orphans_async(self) -> list[WorkflowHandle[Any]]:
        return await asyncio.to_thread(self.adopt_orphans)

    def adopt_orphans(self) -> list[WorkflowHandle[Any]]:
        """Recover PENDING workflows whose executor's lease expired."""
        self.require_launched()
        return recovery.adopt_orphans(self)

    async def check_alerts_async(self) -> None:
        await asyncio.to_thread(self.check_alerts)

    def check_alerts(self) -> None:
        """Look once for stuck queues and lost executors (the maintenance loop does so
        regularly; test tooling calls it after moving time)."""
        self.require_launched()
        self.fleet_watch.executors()
        self.fleet_watch.queues()

    # -- public API --------------------------------------------------------------------------

    @overload
    def start_workflow(
        self,
        fn: Workflow[..., Coroutine[Any, Any, R]],
        *args: Any,
        workflow_id: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[R]: ...

    @overload
    def start_workflow(
        self,
        fn: Workflow[..., R],
        *args: Any,
        workflow_id: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[R]: ...

    @overload
    def start_workflow(
        self,
        fn: str,
        *args: Any,
        workflow_id: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[Any]: ...

    def start_workflow(
        self,
        fn: Any,
        *args: Any,
        workflow_id: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[Any]:
        """Start a workflow in the background of this process and return its handle.

        The same ``workflow_id`` never runs twice: a second call returns a handle to the first."""
        defn = resolve_workflow(fn)
        ctx = ctxmod.current()
        if ctx is not None and ctx.engine is self:
            return start_child(ctx, defn, args, kwargs, workflow_id, timeout)
        conn, on_commit = self.transactional_connection()
        row, created = self.create_workflow(
            defn, args, kwargs, workflow_id=workflow_id, timeout=timeout, conn=conn
        )
        if created:
            if on_commit is not None:
                on_commit(lambda: self.submit(defn, row, []))
            else:
                self.submit(defn, row, [])
        return WorkflowHandle(self, row.workflow_id, created=created)

    @overload
    async def start_workflow_async(
        self,
        fn: Workflow[..., Coroutine[Any, Any, R]],
        *args: Any,
        workflow_id: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[R]: ...

    @overload
    async def start_workflow_async(
        self,
        fn: Workflow[..., R],
        *args: Any,
        workflow_id: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[R]: ...

    @overload
    async def start_workflow_async(
        self,
        fn: str,
        *args: Any,
        workflow_id: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[Any]: ...

    async def start_workflow_async(
        self,
        fn: Any,
        *args: Any,
        workflow_id: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[Any]:
        start = functools.partial(
            self.start_workflow, fn, *args, workflow_id=workflow_id, timeout=timeout, **kwargs
        )
        return await asyncio.to_thread(start)

    def _schedule_runner(self) -> Runner | None:
        return Runner(self.executor_id, self.application_version)

    def _started_schedule_runs(self, rows: list[WorkflowRow]) -> None:
        for row in rows:
            defn = REGISTRY.get(row.name)
            if row.status == "PENDING" and row.executor_id == self.executor_id and defn:
                self.submit(defn, row, [])

    def _schedules_changed(self) -> None:
        if self.scheduler is not None:
            self.scheduler.wake()

    def transactional_connection(self) -> tuple[Any, Callable[[Callable[[], None]], None] | None]:
        """Integrations (Django) may enlist workflow creation in the app's open transaction."""
        if self._transactions_override is None:
            return None, None
        return self._transactions_override.enlist(self)

    def callers_transaction(self) -> tuple[Any, Callable[..., Any] | None]:
        """The caller's open transaction that lookups, sends and cancels join, if the
        integration's adapter offers one (Django: ``atomic()`` on the system database)."""
        adapter = self._transactions_override
        if adapter is not None and isinstance(adapter, CallersTransaction):
            return adapter.callers_transaction(self)
        return None, None

    async def in_callers_thread(self, fn: Callable[[], T]) -> T:
        """``fn()`` where ``callers_transaction`` sees the caller's transaction (the
        integration's adapter knows which thread that is); here without one."""
        adapter = self._transactions_override
        if adapter is not None and isinstance(adapter, CallersTransaction):
            return await adapter.in_callers_thread(fn)
        return fn()

    def cancel_workflow(self, workflow_id: str) -> None:
        """Cancel a workflow and its children: they stop at their next step boundary.

        Inside the caller's open transaction (Django's ``atomic()``) the cancel joins it: the
        running executions here are stopped once it commits."""
        conn, on_commit = self.callers_transaction()
        with self.store.joining(conn, on_commit):
            super().cancel_workflow(workflow_id)
            ids = [workflow_id, *self.store.descendants(workflow_id)]

        def stop() -> None:
            for wid in ids:
                ctx = self._running.get(wid)
                if ctx is not None:
                    ctx.cancel_event.set()

        if on_commit is not None:
            on_commit(stop)
        else:
            stop()

    def resume_workflow(self, workflow_id: str) -> WorkflowHandle[Any]:
        """Continue a CANCELLED, failed or dead-lettered workflow from its last completed step.

        For a failed workflow, the step whose error ended it is run again (so a fixed
        dependency or a deploy can rescue it); steps that succeeded are replayed."""
        self.require_launched()
        row = self.store.get_workflow(workflow_id)
        if row is None:
            raise WorkflowNotFound(workflow_id)
        defn = REGISTRY.get(row.name)
        if row.status in ("PENDING", "SUCCESS"):
            return WorkflowHandle(self, workflow_id)
        if row.status == "ENQUEUED":
            return WorkflowHandle(self, workflow_id)
        if defn is None:
            resume_workflow(self.store, workflow_id)
            return WorkflowHandle(self, workflow_id)
        if row.status == "ERROR":
            self.store.forget_failed_last_step(workflow_id)
        claimed = self.store.claim_workflow(
            workflow_id,
            self.executor_id,
            uuid.uuid4().hex,
            expected_token=None,
            count_recovery=False,
            statuses=("CANCELLED", "ERROR", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"),
            reset_attempts=True,
        )
        if claimed is not None:
            self._clear_deadline(claimed)
            self.submit(defn, claimed, None)
        return WorkflowHandle(self, workflow_id)

    def _clear_deadline(self, row: WorkflowRow) -> None:
        if row.deadline is not None:
            self.store.clear_deadline(row.workflow_id)
            row.deadline = None

    def fork_workflow(
        self,
        workflow_id: str,
        /,  # so that ``workflow_id=`` names the new workflow, as API.md says
        start_step: int,
        workflow_id_new: str | None = None,
        *,
        application_version: str | None = None,
        **kw: Any,
    ) -> WorkflowHandle[Any]:
        """A new workflow with the same inputs and the recorded outcomes of steps before
        ``start_step``, running from ``start_step`` on."""
        self.require_launched()
        new_id = kw.pop("workflow_id", None) or workflow_id_new
        if kw:
            raise TypeError(f"unexpected arguments: {', '.join(kw)}")
        row = fork_workflow(
            self.store,
            workflow_id,
            start_step,
            new_id,
            executor_id=self.executor_id,
            application_version=application_version or self.application_version,
        )
        defn = REGISTRY.get(row.name)
        if defn is not None:
            self.submit(defn, row, None)
        return WorkflowHandle(self, row.workflow_id)
