"""The seam between the engine and everything it runs: the ``Runtime`` Protocol.

Executions, waits, parking, recovery, queues and the integrations ask an engine only for what
is declared here, so none of them imports ``engine.py`` (which imports all of them). The
process's default engine is held here too, for the module-level shortcuts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .errors import EngineNotRunning

if TYPE_CHECKING:
    from .alerts import Alerts
    from .clock import Clock
    from .registry import StepDef, WorkflowDef
    from .retention import Retention
    from .serialization import Serializer
    from .store import DatabaseURL, SQLStore, StepRow, WorkflowRow
    from .timers import Timers
    from .wakeups import Notifier

T = TypeVar("T")


class Suspend(BaseException):
    """Unwinds a sync workflow that waits longer than the engine's threshold, so it gives back
    its thread; the engine replays it when the timer fires or a wake-up key is signalled.
    A BaseException so that a user's ``except Exception`` cannot swallow it."""

    def __init__(
        self, wake_at: float | None, keys: tuple[Any, ...] = (), versions: tuple[Any, ...] = ()
    ):
        self.wake_at = wake_at
        self.keys = keys
        self.versions = versions


class Aborted(BaseException):
    """This execution no longer owns its workflow (cancelled, timed out, recovered elsewhere)."""


class StepHooks(Protocol):
    """A seam for test tooling (``durable_core.testing``): called around every ``@step`` and
    ``@transaction`` that runs (not when a recorded outcome is replayed).

    ``before_step`` returns the definition to run (a test may substitute the body) and may
    raise to end the execution there; ``after_step`` is called once the checkpoint is written.
    """

    def before_step(
        self, workflow: str, workflow_id: str, step_id: int, defn: StepDef
    ) -> StepDef: ...

    def after_step(self, workflow: str, workflow_id: str, step_id: int, defn: StepDef) -> None: ...


class Execution(Protocol):
    """What the runtime needs of one running execution (a ``WorkflowContext``)."""

    workflow_id: str
    deadline_ms: int | None
    cancel_event: threading.Event
    recorded: dict[int, StepRow]
    pending: Any  # a deferred checkpoint (see WorkflowContext.pending)
    pending_since: float

    def write_pending(self) -> None: ...


class SystemDatabase(Protocol):
    """What handles, stream readers and control calls need: the system database, the
    serializer and the wake-up signals. Engines and Clients both provide it."""

    store: SQLStore
    serializer: Serializer
    notifier: Notifier
    poll_interval: float

    def awaiting_result(self, workflow_id: str) -> AbstractContextManager[None]:
        """Entered while a caller waits for ``workflow_id``'s result (a handle's ``result``,
        a direct call): a test engine runs due work and skips time then; others do nothing."""
        ...

    def callers_transaction(self) -> tuple[Any, Callable[..., Any] | None]:
        """The caller's open transaction on the system database that lookups, sends and
        cancels made in it join (Django's ``atomic()``), as ``(connection, on_commit)``;
        ``(None, None)`` outside one or when the integration does not join them."""
        ...

    async def in_callers_thread(self, fn: Callable[[], T]) -> T:
        """``fn()`` run where ``callers_transaction`` sees the caller's transaction: from
        async code bridged from a sync thread (Django's ``async_to_sync`` inside
        ``atomic()``) that is the sync thread, whose transaction is thread-local; else here."""
        ...


class Runtime(SystemDatabase, Protocol):
    """What executions, parking, recovery, queues and integrations may ask of an engine."""

    executor_id: str
    application_version: str
    clock: Clock
    step_hooks: StepHooks | None
    #: The application's alert hooks (``Engine(on_workflow_failed=..., on_dead_letter=...)``).
    alerts: Alerts
    #: The queue-stuck / executor-lost watch of this launch (``recovery.FleetWatch``).
    fleet_watch: Any
    #: Retention policies applied by the maintenance loop (empty: off).
    retention: tuple[Retention, ...]
    queue_names: list[str] | None
    url: DatabaseURL
    max_workers: int
    suspend_threshold: float
    #: A sync workflow with this many recorded entries is held through a wait, up to
    #: ``hold_seconds``, instead of parked (``ParkingLot.hold``).
    hold_history: int
    hold_seconds: float
    #: How long a sync workflow's last plain step checkpoint may be deferred (0: never).
    checkpoint_delay: float
    lease_seconds: float
    heartbeat_seconds: float
    #: Whether this engine recovers its own executor's PENDING work (at launch, and by the
    #: periodic sweep of what no execution here holds).
    recover_on_launch: bool
    adopt_interval: float
    deadline_interval: float
    #: Seconds an executor's row stays after its last heartbeat once its work was adopted
    #: (0: kept until its ID is taken again).
    forget_executors_after: float

    @property
    def launched(self) -> bool: ...

    def renew_lease(self) -> None:
        """Renew this executor's heartbeat now."""
        ...

    def may_judge_leases(self) -> bool:
        """Whether this engine's own contact with the database has lasted a full lease, so
        that others' stale heartbeats are evidence that they are dead."""
        ...

    @property
    def stopping(self) -> threading.Event:
        """Set once shutdown begins; background loops wait on it."""
        ...

    @property
    def inflight(self) -> int:
        """Executions holding a thread or a task here now (parked ones do not count)."""
        ...

    @property
    def timers(self) -> Timers | None: ...

    @property
    def transactions(self) -> Any:
        """The adapter that runs ``@transaction`` steps."""
        ...

    def require_launched(self) -> None:
        """Raise unless launched. The integration hook for lazy launch: an integration's
        engine may override it to launch at first use."""
        ...

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
    ) -> tuple[WorkflowRow, bool]: ...

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
    ) -> WorkflowRow: ...

    def submit(
        self,
        defn: WorkflowDef,
        row: WorkflowRow,
        steps: list[StepRow] | None,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        """Run a workflow this process owns in the background."""
        ...

    def run_inline(self, defn: WorkflowDef, row: WorkflowRow) -> Any: ...

    def run_sync(
        self,
        defn: WorkflowDef,
        row: WorkflowRow,
        steps: list[StepRow] | None,
        on_done: Callable[[], None] | None,
    ) -> None:
        """Run a sync workflow in this (pool) thread; its end balances one ``track_inflight(1)``."""
        ...

    def run_in_pool(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on a workflow thread; RuntimeError once the pool is shut down."""
        ...

    def track_inflight(self, delta: int, workflow_id: str | None = None) -> None:
        """Count executions handed off (and, with ``workflow_id``, which workflow they run)."""
        ...

    def park(self, defn: WorkflowDef, workflow_id: str, suspended: Suspend) -> None:
        """Park a waiting sync workflow (it holds no thread until a wake-up replays it)."""
        ...

    def detach_thread(self) -> bool:
        """Take this workflow thread out of the pool (see ``WorkerPool.detach_current``)."""
        ...

    def hold_warm(
        self, ctx: Execution, keys: Sequence[Any], seen: Sequence[int], deadline: float
    ) -> bool:
        """Wait keeping the execution (see ``ParkingLot.hold``); False: park it instead."""
        ...

    def in_thread_wait(self) -> AbstractContextManager[bool]:
        """Whether a wait may stay on its thread (a bounded share of the pool may)."""
        ...

    def poll_parked(self) -> None:
        """The safety poll for parked waiters whose wake-up signal no one sent."""
        ...

    def write_deferred_checkpoints(self, older_than: float) -> None:
        """Write the deferred last-step checkpoints of running executions that have waited
        at least ``older_than`` seconds for their workflow's outcome (see WorkflowContext)."""
        ...

    def register_execution(self, ctx: Execution) -> None: ...

    def unregister_execution(self, ctx: Execution) -> None: ...

    def runs_here(self, workflow_id: str) -> bool:
        """True while this process runs, parks, or has handed off (not yet started) the
        workflow: what this executor's sweep of its own PENDING rows must leave alone."""
        ...

    def expire_deadline(self, workflow_id: str) -> None: ...

    def transactional_connection(self) -> tuple[Any, Callable[[Callable[[], None]], None] | None]:
        """The application's open transaction to enlist workflow creation in, if any."""
        ...

    def step_boundary(self) -> None:
        """Called before and after each step body (integrations tidy connections there)."""
        ...

    # The public calls that the module-level shortcuts forward (typed there).
    def start_workflow(
        self, fn: Any, *args: Any, workflow_id: str | None = None, timeout: float | None = None,
        **kwargs: Any,
    ) -> Any: ...  # fmt: skip

    def retrieve_workflow(self, workflow_id: str) -> Any: ...

    def cancel_workflow(self, workflow_id: str) -> None: ...


def in_callers_transaction(owner: SystemDatabase) -> AbstractContextManager[None]:
    """The store calls of this block join the caller's open transaction, if there is one:
    inside Django's ``atomic()`` a workflow started there is visible and a message sent there
    commits (or rolls back) with it."""
    conn, on_commit = owner.callers_transaction()
    return owner.store.joining(conn, on_commit)


# -- the default engine ------------------------------------------------------------------------

_default_engine: Runtime | None = None


def set_default_engine(engine: Runtime | None) -> None:
    """Make ``engine`` the one that module-level calls outside a workflow act on."""
    global _default_engine
    _default_engine = engine


def set_default_engine_if_unset(engine: Runtime) -> None:
    if _default_engine is None:
        set_default_engine(engine)


def clear_default_engine(engine: Runtime) -> None:
    """Forget ``engine`` as the default if it is the default."""
    if _default_engine is engine:
        set_default_engine(None)


def get_default_engine() -> Runtime:
    if _default_engine is None:
        raise EngineNotRunning(
            "No engine is running: create an Engine(...) and call launch() (or use it as a "
            "context manager) before starting workflows, or call set_default_engine()."
        )
    return _default_engine
