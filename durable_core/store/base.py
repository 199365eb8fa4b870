"""The store: every statement the engine runs against the system database, in one place.

``SQLStore`` holds the SQL (written once, ``%s`` placeholders) and the logic around it; the
SQLite and PostgreSQL subclasses supply connections, transactions and the few statements whose
dialects differ. Nothing outside ``store/`` writes SQL for the system database.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import operator
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from ..clock import Clock
from ..errors import DeduplicationConflict, SchemaVersionError
from ..status import TERMINAL
from ..validation import is_storable_text
from .debounce import enqueue as debounce_enqueue
from .group_commit import GroupCommit
from .partitions import candidates as partition_candidates
from .schema import CURRENT_VERSION, MIGRATIONS

log = logging.getLogger("durable_core.store")

STATUSES = ("ENQUEUED", "PENDING", *TERMINAL)

# A statement that names its row by primary key tests the status through `status || ''`: that
# expression cannot match a partial index's `status = ...` predicate (nor lead an index on
# status), so it is planned on the primary key however stale the statistics about in-flight
# rows are (with few PENDING rows at the last ANALYZE, PostgreSQL would otherwise pick the small
# PENDING index and walk every parked workflow).
OWNED = "workflow_id = %s AND run_token = %s AND status || '' = 'PENDING'"


_S = TypeVar("_S", bound="SQLStore")
_P = ParamSpec("_P")
_T = TypeVar("_T")


def whole(method: Callable[Concatenate[_S, _P], _T]) -> Callable[Concatenate[_S, _P], _T]:
    """Marks an operation that runs in one transaction: a store may retry it whole (the
    PostgreSQL store does, through an outage), since a failure rolls all of it back."""

    @functools.wraps(method)
    def retried(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return self.retry_whole(functools.partial(method, self, *args, **kwargs))

    return retried


# What a claim sets on each workflow it takes (parameters: executor, run-token prefix, then the
# claim's time four times). The deadline: one rule for every child, started or enqueued, the
# earlier of its own timeout (counted from now) and the deadline inherited from its parent.
CLAIM_SET = (
    "status = 'PENDING', executor_id = %s, run_token = %s || workflow_id, started_at = %s, "
    "updated_at = %s, deadline = CASE WHEN timeout_ms IS NULL THEN deadline "
    "WHEN deadline IS NOT NULL AND deadline < %s + timeout_ms THEN deadline "
    "ELSE %s + timeout_ms END"
)


def now_ms() -> int:
    """This host's wall time, for timestamps no other process compares (say, rows in the
    application database). Times that cross processes come from ``SQLStore.now_ms()``."""
    return int(time.time() * 1000)


storable_text = is_storable_text  # lookups with an unstorable ID find nothing


WORKFLOW_COLUMNS = (
    "workflow_id, name, status, queue_name, inputs, output, error, executor_id, run_token, "
    "application_version, recovery_attempts, max_recovery_attempts, parent_workflow_id, "
    "priority, deduplication_id, not_before, timeout_ms, deadline, created_at, updated_at, "
    "started_at, finished_at, trace_context, partition_key, debounce_key"
)
_WORKFLOW_FIELDS = [c.strip() for c in WORKFLOW_COLUMNS.split(",")]
_workflow_values = operator.attrgetter(*_WORKFLOW_FIELDS)  # a row's column values, in C
STEP_COLUMNS = "step_id, name, output, error, child_workflow_id, started_at, finished_at, attempts"


@dataclass(slots=True)
class WorkflowRow:
    workflow_id: str
    name: str
    status: str
    queue_name: str | None = None
    inputs: str | None = None
    output: str | None = None
    error: str | None = None
    executor_id: str | None = None
    run_token: str | None = None
    application_version: str | None = None
    recovery_attempts: int = 0
    max_recovery_attempts: int | None = None
    parent_workflow_id: str | None = None
    priority: int = 0
    deduplication_id: str | None = None
    not_before: int | None = None
    timeout_ms: int | None = None
    deadline: int | None = None
    created_at: int = 0
    updated_at: int = 0
    started_at: int | None = None
    finished_at: int | None = None
    trace_context: str | None = None  # see observability.py
    partition_key: str | None = None  # a partitioned queue's fairness key (partitions.py)
    debounce_key: str | None = None  # coalesces enqueues while ENQUEUED (debounce.py)
    #: Not a column: whether the workflow has recorded steps, when the statement that read
    #: the row said so (a claim on PostgreSQL); None when unknown.
    has_steps: bool | None = None

    @classmethod
    def from_tuple(cls, row: Sequence[Any]) -> WorkflowRow:
        return cls(*row)

    def values(self) -> tuple[Any, ...]:
        values: tuple[Any, ...] = _workflow_values(self)
        return values


@dataclass(slots=True)
class StepRow:
    step_id: int
    name: str
    output: str | None
    error: str | None
    child_workflow_id: str | None
    started_at: int | None
    finished_at: int | None
    attempts: int = 1  # how many times its body ran (retries + 1); 1 for every other kind


@dataclass(frozen=True, slots=True)
class QueueClaim:
    """What one dequeue pass may take from a queue. The limits are the code's declaration;
    the claim applies the queue's stored settings (``QueueSettings.apply``) on top."""

    name: str
    limit: int  # the most this pass may claim (local capacity)
    concurrency: int | None
    rate_limit: tuple[int, float] | None
    priority_enabled: bool
    names: tuple[str, ...]  # workflow names this engine can run
    versions: tuple[str, ...]  # application versions this engine accepts
    worker_concurrency: int | None = None  # declared per-process limit
    running_here: int = 0  # this process's running workflows of the queue
    #: A partitioned queue: claimed round-robin over its keys, with these limits per key.
    partitioned: bool = False
    partition_concurrency: int | None = None
    partition_worker_concurrency: int | None = None
    partition_rate_limit: tuple[int, float] | None = None
    #: (key, running) of this process's running workflows of the queue, per partition key.
    running_here_by_key: tuple[tuple[str, int], ...] = ()

    def filters(self) -> tuple[str, tuple[Any, ...]]:
        """The candidate scans' clauses on workflow name and application version, with their
        parameters. ``name || ''`` keeps the name index out of the plan: beside a long history
        of other names, PostgreSQL judged the claimable names rare, so it read every ready row
        of the queue through both indexes and sorted them all, at each claim (11.9 ms against
        2.2 ms for a 20k backlog next to 1M finished workflows)."""
        names = self.names or ("",)
        sql = (
            f"AND name || '' IN ({', '.join(['%s'] * len(names))}) "
            "AND (application_version IS NULL OR application_version IN "
            f"({', '.join(['%s'] * len(self.versions))})) "
        )
        return sql, (*names, *self.versions)


def _override(stored: Any, declared: Any) -> Any:
    """A stored override column: NULL inherits the declaration, 0 means no limit."""
    if stored is None:
        return declared
    return None if stored == 0 else stored


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """One row of ``durable_queue_settings``: the operator's overrides (raw: ``None``
    inherits the declaration, 0 is "no limit") and the declaration a worker last published."""

    name: str
    paused: bool = False
    concurrency: int | None = None
    worker_concurrency: int | None = None
    rate_limit_count: int | None = None
    rate_limit_period: float | None = None
    declared_concurrency: int | None = None
    declared_worker_concurrency: int | None = None
    declared_rate_limit_count: int | None = None
    declared_rate_limit_period: float | None = None
    declared_version: str | None = None
    declared_at: int | None = None
    updated_at: int | None = None

    def effective(
        self,
        concurrency: int | None,
        worker_concurrency: int | None,
        rate_limit: tuple[int, float] | None,
    ) -> tuple[int | None, int | None, tuple[int, float] | None]:
        """The limits in force given these declared ones: each override wins until reset.
        The one rule, used by the claim and by every view of a queue."""
        rate: tuple[int, float] | None = rate_limit
        if self.rate_limit_count is not None:
            rate = (
                None
                if self.rate_limit_count == 0
                else (int(self.rate_limit_count), float(self.rate_limit_period or 1.0))
            )
        return (
            _override(self.concurrency, concurrency),
            _override(self.worker_concurrency, worker_concurrency),
            rate,
        )

    @property
    def overridden(self) -> tuple[str, ...]:
        return tuple(
            label
            for label, value in (
                ("concurrency", self.concurrency),
                ("worker_concurrency", self.worker_concurrency),
                ("rate_limit", self.rate_limit_count),
            )
            if value is not None
        )

    def apply(self, claim: QueueClaim) -> QueueClaim | None:
        """``claim`` with these settings in force; None when the queue is paused."""
        if self.paused:
            return None
        concurrency, worker_concurrency, rate = self.effective(
            claim.concurrency, claim.worker_concurrency, claim.rate_limit
        )
        limit = claim.limit
        if worker_concurrency is not None:
            limit = min(limit, worker_concurrency - claim.running_here)
        return dataclasses.replace(
            claim,
            limit=limit,
            concurrency=concurrency,
            worker_concurrency=worker_concurrency,
            rate_limit=rate,
        )


QUEUE_SETTINGS_COLUMNS = (
    "queue_name, paused, concurrency, worker_concurrency, rate_limit_count, rate_limit_period, "
    "declared_concurrency, declared_worker_concurrency, declared_rate_limit_count, "
    "declared_rate_limit_period, declared_version, declared_at, updated_at"
)


def _queue_settings(row: Sequence[Any]) -> QueueSettings:
    return QueueSettings(row[0], bool(row[1]), *row[2:])


SCHEDULE_COLUMNS = (
    "schedule_id, workflow_name, cron, timezone, inputs, queue_name, catchup, max_catchup, "
    "overlap, paused, source, last_tick, last_workflow_id, created_at, updated_at"
)


@dataclass(slots=True)
class ScheduleRow:
    """A row of ``durable_schedules`` (see ``durable_core.schedules`` for the meaning)."""

    schedule_id: str
    workflow_name: str
    cron: str
    timezone: str
    inputs: str | None
    queue_name: str | None
    catchup: str
    max_catchup: int
    overlap: str
    paused: bool
    source: str
    last_tick: int | None
    last_workflow_id: str | None
    created_at: int
    updated_at: int

    @classmethod
    def from_tuple(cls, row: Sequence[Any]) -> ScheduleRow:
        values = list(row)
        values[9] = bool(values[9])
        return cls(*values)

    def values(self) -> tuple[Any, ...]:
        return (
            self.schedule_id, self.workflow_name, self.cron, self.timezone, self.inputs,
            self.queue_name, self.catchup, self.max_catchup, self.overlap, int(self.paused),
            self.source, self.last_tick, self.last_workflow_id, self.created_at, self.updated_at,
        )  # fmt: skip


class OwnershipLost(Exception):
    """The checkpoint was refused: the workflow is no longer PENDING under this run token
    (it was cancelled, finished, or recovered by another execution)."""


# A step checkpoint to write with another statement: the arguments of ``record_step``.
StepCheckpoint = tuple[str, str, int, str, "str | None", "str | None", "str | None", int]
# A step checkpoint written with the workflow's outcome (``finish_workflow``): step_id, name,
# output, error, child_workflow_id, started_at, finished_at, attempts.
FinalStep = tuple[int, str, "str | None", "str | None", "str | None", int, int, int]
# A workflow's outcome to record (``finish_workflow``): workflow_id, run_token, status, output,
# error and the deferred last step's checkpoint, if any.
Finish = tuple[str, str, str, "str | None", "str | None", "FinalStep | None"]


class ThreadFlag(threading.local):
    """An on/off switch per thread, on for the length of a ``with`` block."""

    active = False

    @contextlib.contextmanager
    def on(self) -> Iterator[None]:
        previous, self.active = self.active, True
        try:
            yield
        finally:
            self.active = previous


class SQLStore:
    dialect: str = ""
    placeholder = "%s"
    conninfo: str = ""  # PostgreSQL only: what the LISTEN connection connects to
    #: Called with (kind, key) after a commit, for in-process wake-ups (set by the engine).
    on_commit: Callable[[str, str], None] | None = None
    #: The fleet's clock for every time this store writes or compares (see clock.py). Each
    #: store gets its own at open; an engine replaces it with the engine's clock.
    clock: Clock

    def now_ms(self) -> int:
        """Now on the fleet's time base, in epoch milliseconds."""
        return self.clock.now_ms()

    #: Retries of a failed statement (an outage, a locked SQLite file) stop at this
    #: ``time.monotonic()`` instant; set by a shutdown so that it is bounded by its timeout.
    give_up_at: float = float("inf")

    _single = ThreadFlag()
    _lease = ThreadFlag()

    def single_attempt(self) -> contextlib.AbstractContextManager[None]:
        """Statements in this block (in this thread) are not retried through an outage: the
        caller has a retry policy of its own (the heartbeat's is quicker than the store's
        backoff, so that a lease is renewed soon after the database returns)."""
        return self._single.on()

    def lease_connection(self) -> contextlib.AbstractContextManager[None]:
        """Statements in this block (in this thread) run on a connection kept for the
        executor's lease, never one of the pool's: when every pooled connection is held by a
        step waiting on a lock, the heartbeat still renews the lease, so the others do not
        presume this live engine dead and run its plain steps a second time. A store
        without a pool (SQLite) runs them as usual."""
        return self._lease.on()

    def retries_allowed(self) -> bool:
        return not self._single.active and time.monotonic() < self.give_up_at

    def give_up_retrying_after(self, seconds: float) -> None:
        """From ``seconds`` from now on, a statement that fails for want of the database
        raises ``DatabaseUnavailable`` instead of being retried."""
        self.give_up_at = min(self.give_up_at, time.monotonic() + max(seconds, 0.0))

    #: One statement that returns the database server's clock in epoch milliseconds.
    database_time_sql = ""

    def database_time_ms(self) -> int:
        """The database server's clock (what ``DatabaseClock`` is calibrated against)."""
        return int(self.fetchone(self.database_time_sql)[0])

    def ping(self) -> None:
        """One round trip that reads nothing: the health check, the scrape's latency."""
        self.read_all("SELECT 1")

    # -- primitives supplied by subclasses -------------------------------------------------

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        """A connection in autocommit mode."""
        raise NotImplementedError
        yield

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """A connection inside one transaction, committed on exit."""
        raise NotImplementedError
        yield

    def retry_whole(self, operation: Callable[[], _T]) -> _T:
        """Run an operation marked ``@whole``; a store may retry it through an outage."""
        return operation()

    def close(self) -> None:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql

    def workflows_by(self, index: str) -> str:
        """``durable_workflows`` in a FROM clause, read through ``index`` where the dialect
        needs telling: SQLite plans without statistics and, for two indexes that both serve a
        statement, does not prefer the small partial one. PostgreSQL plans by cost."""
        return "durable_workflows"

    def execute(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        return conn.execute(self._sql(sql), params)

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self.connection() as conn:
            rowcount: int = self.execute(conn, sql, params).rowcount
            return rowcount

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self.connection() as conn:
            return self.execute(conn, sql, params).fetchone()

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.connection() as conn:
            return list(self.execute(conn, sql, params).fetchall())

    def read_all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """A read-only query that may run beside the writers (housekeeping, listings, lookups
        of one workflow): SQLite gives it a connection of its own, so it never holds up a
        checkpoint nor waits behind one."""
        return self.fetchall(sql, params)

    def read_one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.read_all(sql, params)
        return rows[0] if rows else None

    # -- the caller's own transaction (Django's atomic()) ----------------------------------

    _joined = threading.local()

    @contextlib.contextmanager
    def joining(self, conn: Any, on_commit: Callable[..., None] | None = None) -> Iterator[None]:
        """In this block (in this thread) the store's statements run on ``conn``, the
        application's open transaction on the system database: they see its uncommitted rows
        (a workflow started in it) and commit or roll back with it; in-process wake-ups wait
        for ``on_commit``. ``conn`` None: nothing changes."""
        if conn is None:
            yield
            return
        previous = getattr(self._joined, "value", None)
        self._joined.value = (self, conn, on_commit)
        try:
            yield
        finally:
            self._joined.value = previous

    def joined_connection(self) -> Any:
        """The connection of the caller's transaction this thread joined (``joining``), if any."""
        value = getattr(self._joined, "value", None)
        return value[1] if value is not None and value[0] is self else None

    # -- schema ----------------------------------------------------------------------------

    def schema_version(self) -> int | None:
        raise NotImplementedError

    def migrate(self) -> int:
        """Apply pending migrations; refuse a database newer than this code."""
        with self.migration_lock() as conn:
            self.execute(
                conn, "CREATE TABLE IF NOT EXISTS durable_schema (version INTEGER NOT NULL)"
            )
            row = self.execute(conn, "SELECT MAX(version) FROM durable_schema").fetchone()
            version = row[0] or 0
            if version > CURRENT_VERSION:
                raise SchemaVersionError(
                    f"The system database is at schema version {version}, newer than this "
                    f"release understands ({CURRENT_VERSION}). Upgrade durable-workflows."
                )
            for index, statements in enumerate(MIGRATIONS[self.dialect], start=1):
                if index <= version:
                    continue
                for statement in statements:
                    self.execute(conn, statement)
                self.execute(conn, "INSERT INTO durable_schema (version) VALUES (%s)", (index,))
                log.info("system database migrated to schema version %d", index)
            return max(version, CURRENT_VERSION)

    def ensure_schema(self, migrate: bool) -> None:
        """What a launching engine does: read the schema version and, when it is current, run
        no DDL at all (a role with DML rights only can launch). A database behind this code is
        migrated when ``migrate`` allows it, else refused."""
        version = self.schema_version()
        if version == CURRENT_VERSION:
            return
        if migrate and (version or 0) < CURRENT_VERSION:
            self.migrate()
            return
        self.check_schema()

    def check_schema(self) -> None:
        version = self.schema_version()
        if version is None or version < CURRENT_VERSION:
            raise SchemaVersionError(
                "The system database has not been migrated (schema version "
                f"{version or 0}, need {CURRENT_VERSION}). Run `durable migrate` (or launch "
                "an Engine with migrate=True)."
            )
        if version > CURRENT_VERSION:
            raise SchemaVersionError(
                f"The system database is at schema version {version}, newer than this "
                f"release understands ({CURRENT_VERSION}). Upgrade durable-workflows."
            )

    @contextlib.contextmanager
    def migration_lock(self) -> Iterator[Any]:
        with self.transaction() as conn:
            yield conn

    # -- workflows -------------------------------------------------------------------------

    _INSERT_WORKFLOW = (
        f"INSERT INTO durable_workflows ({WORKFLOW_COLUMNS}) VALUES "
        f"({', '.join(['%s'] * len(_WORKFLOW_FIELDS))}) ON CONFLICT (workflow_id) DO NOTHING"
    )

    def insert_workflow(self, row: WorkflowRow, conn: Any = None) -> bool:
        """Insert unless the ID exists. True when this call created it."""
        sql = self._INSERT_WORKFLOW
        try:
            if conn is not None:
                return bool(self.execute(conn, sql, row.values()).rowcount == 1)
            return self.run(sql, row.values()) == 1
        except Exception as exc:
            if row.deduplication_id and self.is_unique_violation(exc):
                raise DeduplicationConflict(row.queue_name or "", row.deduplication_id) from None
            raise

    #: Rows per statement of a batch insert: a few hundred, so a statement's bind parameters
    #: stay well under SQLite's limit (32766; PostgreSQL's is 65535).
    batch_rows = 16_000 // len(_WORKFLOW_FIELDS)

    def insert_workflows(self, rows: Sequence[WorkflowRow], conn: Any) -> list[bool]:
        """Insert a batch inside ``conn``'s transaction: a statement per ``batch_rows`` rows,
        one round trip apiece, instead of one per row. Per row whether it was created. A row
        refused by the deduplication index (an ENQUEUED or PENDING workflow of the queue has
        its ``deduplication_id``, or an earlier row of the batch does) raises
        ``DeduplicationConflict``, as ``insert_workflow`` does: the caller's transaction then
        stores none of the batch."""
        created: set[str] = set()
        for start in range(0, len(rows), self.batch_rows):
            created.update(self._insert_rows(conn, rows[start : start + self.batch_rows]))
        outcome = []
        for row in rows:
            if row.workflow_id not in created and row.deduplication_id:
                raise DeduplicationConflict(row.queue_name or "", row.deduplication_id)
            outcome.append(row.workflow_id in created)
        return outcome

    def _insert_rows(self, conn: Any, part: Sequence[WorkflowRow]) -> list[str]:
        """One multi-row INSERT skipping conflicts; the IDs it inserted."""
        marks = "(" + ", ".join(["%s"] * len(_WORKFLOW_FIELDS)) + ")"
        sql = (
            f"INSERT INTO durable_workflows ({WORKFLOW_COLUMNS}) VALUES "
            f"{', '.join([marks] * len(part))} ON CONFLICT DO NOTHING RETURNING workflow_id"
        )
        params = [value for row in part for value in row.values()]
        return [r[0] for r in self.execute(conn, sql, params).fetchall()]

    def debounce_workflow(
        self, row: WorkflowRow, max_wait_ms: int | None, conn: Any = None
    ) -> tuple[str, bool]:
        """Store a debounced ``row`` or coalesce it into the waiting workflow of its key
        (``debounce.py``): the one workflow's ID, and whether this call created it. In
        ``conn``'s transaction when given."""
        if conn is not None:
            return debounce_enqueue(self, row, max_wait_ms, conn, WORKFLOW_COLUMNS)
        return self._debounce_alone(row, max_wait_ms)

    @whole
    def _debounce_alone(self, row: WorkflowRow, max_wait_ms: int | None) -> tuple[str, bool]:
        with self.transaction() as conn:
            return debounce_enqueue(self, row, max_wait_ms, conn, WORKFLOW_COLUMNS)

    def is_unique_violation(self, exc: BaseException) -> bool:
        raise NotImplementedError

    def get_workflow(self, workflow_id: str) -> WorkflowRow | None:
        row = self.read_one(
            f"SELECT {WORKFLOW_COLUMNS} FROM durable_workflows WHERE workflow_id = %s",
            (workflow_id,),
        )
        return WorkflowRow.from_tuple(row) if row else None

    def get_outcome(self, workflow_id: str) -> tuple[str, str | None, str | None] | None:
        if not storable_text(workflow_id):
            return None  # no stored workflow can have this ID (NUL, lone surrogate)
        row = self.read_one(
            "SELECT status, output, error FROM durable_workflows WHERE workflow_id = %s",
            (workflow_id,),
        )
        outcome: tuple[str, str | None, str | None] | None = None if row is None else tuple(row)
        return outcome

    def _workflow_filter(
        self,
        status: Sequence[str] | None,
        name: str | None,
        queue: str | None,
        created_after: int | None,
        created_before: int | None,
        parent_workflow_id: str | None = None,
        executor_id: str | None = None,
        workflow_ids: Sequence[str] | None = None,
    ) -> tuple[list[str], list[Any]] | None:
        """The WHERE clauses and parameters of a listing's filters; None when nothing can
        match (no known status, an empty ID list)."""
        clauses: list[str] = []
        params: list[Any] = []
        if status:
            # Literals, not parameters: the planner then matches the partial indexes on status.
            known = [s for s in STATUSES if s in set(status)]
            if not known:
                return None
            clauses.append("status IN (" + ", ".join(f"'{s}'" for s in known) + ")")
        for column, value in (
            ("name", name),
            ("queue_name", queue),
            ("parent_workflow_id", parent_workflow_id),
            ("executor_id", executor_id),
        ):
            if value is not None:
                clauses.append(f"{column} = %s")
                params.append(value)
        if workflow_ids is not None:
            if not workflow_ids:
                return None
            clauses.append(f"workflow_id IN ({', '.join(['%s'] * len(workflow_ids))})")
            params.extend(workflow_ids)
        if created_after is not None:
            clauses.append("created_at >= %s")
            params.append(created_after)
        if created_before is not None:
            clauses.append("created_at < %s")
            params.append(created_before)
        return clauses, params

    def count_workflows(
        self,
        *,
        status: Sequence[str] | None = None,
        name: str | None = None,
        queue: str | None = None,
        created_after: int | None = None,
        created_before: int | None = None,
    ) -> int:
        """How many workflows match the filters (for a listing's total), read beside the
        writers; served by the same indexes as the listing."""
        matched = self._workflow_filter(status, name, queue, created_after, created_before)
        if matched is None:
            return 0
        clauses, params = matched
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        source = "durable_workflows"
        if status and set(status) <= {"ENQUEUED", "PENDING"}:
            # In-flight rows only, whatever else is filtered (SQLite, without statistics,
            # would walk a queue's or a name's whole history).
            source = self.workflows_by("durable_workflows_status_created_idx")
        return int(self.read_all(f"SELECT COUNT(*) FROM {source} {where}", params)[0][0])  # noqa: S608 - clauses are fixed strings

    def list_workflows(
        self,
        *,
        status: Sequence[str] | None = None,
        name: str | None = None,
        queue: str | None = None,
        created_after: int | None = None,
        created_before: int | None = None,
        parent_workflow_id: str | None = None,
        executor_id: str | None = None,
        workflow_ids: Sequence[str] | None = None,
        limit: int | None = 100,
        offset: int = 0,
        newest_first: bool = True,
        after: tuple[int, str] | None = None,
    ) -> list[WorkflowRow]:
        """Workflows matching every given filter, ordered by (created_at, workflow_id).

        ``after`` is a keyset cursor, the ``(created_at, workflow_id)`` of the last row of the
        previous page: the next page starts just past it at the cost of one index probe, where
        a deep ``offset`` walks every skipped row.
        """
        matched = self._workflow_filter(
            status, name, queue, created_after, created_before,
            parent_workflow_id, executor_id, workflow_ids,
        )  # fmt: skip
        if matched is None:
            return []
        clauses, params = matched
        order = "DESC" if newest_first else "ASC"
        if after is not None:
            created, workflow_id = after
            clauses.append(f"(created_at, workflow_id) {'<' if newest_first else '>'} (%s, %s)")
            params.extend([int(created), str(workflow_id)])
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {WORKFLOW_COLUMNS} FROM durable_workflows {where} ORDER BY created_at {order}, workflow_id {order}"  # noqa: S608 - clauses are fixed strings
        if limit is not None:
            sql += " LIMIT %s OFFSET %s"
            params.extend([int(limit), int(offset)])
        return [WorkflowRow.from_tuple(r) for r in self.read_all(sql, params)]

    _FINISH = (
        "UPDATE durable_workflows SET status = %s, output = %s, error = %s, "
        f"updated_at = %s, finished_at = %s WHERE {OWNED}"
    )
    _INSERT_STEP = (
        "INSERT INTO durable_steps (workflow_id, step_id, name, output, error, "
        "child_workflow_id, started_at, finished_at, attempts) "
    )

    #: Finishes written by group commit (``group_commit.py``; PostgreSQL): those requested
    #: while another finish statement is in flight go together in the next one. None: each
    #: finish is a statement of its own (SQLite, whose single writer runs them one by one).
    finishes: GroupCommit[Finish, bool] | None = None

    def finish_workflow(
        self,
        workflow_id: str,
        run_token: str,
        status: str,
        output: str | None,
        error: str | None,
        step: FinalStep | None = None,
    ) -> bool:
        """Record the workflow's outcome while this execution owns it. With ``step`` (the
        checkpoint of the step the body ran last, not written yet), that step is recorded in
        the same transaction: both or neither, one round trip on PostgreSQL. False when this
        execution no longer owns the workflow (nothing was written)."""
        finish = (workflow_id, run_token, status, output, error, step)
        if self.finishes is not None and self.joined_connection() is None:
            finished = self.finishes.write(finish)
        else:  # inside the caller's transaction: its own statement, on that connection
            finished = self._finish_one(finish)
        self.after_commit("w", workflow_id)
        return finished

    def _finish_one(self, finish: Finish) -> bool:
        """One finish, one statement (and, on SQLite, the step's INSERT in its transaction)."""
        workflow_id, run_token, status, output, error, step = finish
        t = self.now_ms()
        if step is None:
            changed = self.run(self._FINISH, (status, output, error, t, t, workflow_id, run_token))
        else:
            try:
                changed = self._finish_with_step(
                    (status, output, error, t, t, workflow_id, run_token), step
                )
            except Exception as exc:
                # The step is there already: not this execution's to write (it would have
                # replayed it), so the workflow is no longer ours; nothing was written.
                if not self.is_unique_violation(exc):
                    raise
                changed = 0
        return changed == 1

    def _finish_with_step(self, finish: tuple[Any, ...], step: FinalStep) -> int:
        with self.transaction() as conn:
            changed = int(self.execute(conn, self._FINISH, finish).rowcount)
            if changed == 1:
                self.execute(
                    conn,
                    self._INSERT_STEP + "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (finish[5], *step),
                )
            return changed

    @whole
    def claim_workflow(
        self,
        workflow_id: str,
        executor_id: str,
        run_token: str,
        *,
        expected_token: str | None,
        count_recovery: bool,
        statuses: Sequence[str] = ("PENDING",),
        reset_attempts: bool = False,
    ) -> WorkflowRow | None:
        """Take ownership of a workflow (compare-and-swap on its run token).

        Counting a recovery past ``max_recovery_attempts`` dead-letters the workflow instead.
        Returns the row when this call now owns it.
        """
        t = self.now_ms()
        if reset_attempts:
            attempts = "0"
        elif count_recovery:
            attempts = "recovery_attempts + 1"
        else:
            attempts = "recovery_attempts"
        token_clause = "" if expected_token is None else " AND COALESCE(run_token, '') = %s"
        params: list[Any] = [executor_id, run_token, t, t, workflow_id, *statuses]
        if expected_token is not None:
            params.append(expected_token or "")
        with self.transaction() as conn:
            row = self.execute(
                conn,
                "UPDATE durable_workflows SET status = 'PENDING', executor_id = %s, "
                f"run_token = %s, recovery_attempts = {attempts}, updated_at = %s, "
                "started_at = COALESCE(started_at, %s), error = NULL, finished_at = NULL "
                "WHERE workflow_id = %s "
                f"AND status || '' IN ({', '.join(['%s'] * len(statuses))}){token_clause} "
                f"RETURNING {WORKFLOW_COLUMNS}",
                params,
            ).fetchone()
            if row is None:
                # Idempotent: a retry whose first attempt committed (its reply was lost)
                # finds the workflow already under this claim's run token, and owns it.
                row = self.execute(
                    conn,
                    f"SELECT {WORKFLOW_COLUMNS} FROM durable_workflows WHERE workflow_id = %s "
                    "AND executor_id = %s AND run_token = %s "
                    "AND status IN ('PENDING', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')",
                    (workflow_id, executor_id, run_token),
                ).fetchone()
                return None if row is None else WorkflowRow.from_tuple(row)
            wf = WorkflowRow.from_tuple(row)
            limit = wf.max_recovery_attempts
            if count_recovery and limit is not None and wf.recovery_attempts > limit:
                self.execute(
                    conn,
                    "UPDATE durable_workflows SET status = 'MAX_RECOVERY_ATTEMPTS_EXCEEDED', "
                    "error = %s, updated_at = %s, finished_at = %s WHERE workflow_id = %s",
                    (
                        '{"type":"durable_core.errors:WorkflowFailed","message":"recovered '
                        f'{wf.recovery_attempts - 1} times without finishing; dead-lettered"}}',
                        t,
                        t,
                        workflow_id,
                    ),
                )
                wf.status = "MAX_RECOVERY_ATTEMPTS_EXCEEDED"
        self.after_commit("w", workflow_id)
        return wf

    def pending_of_executor(
        self, executor_id: str, versions: Sequence[str], claim_token: str | None = None
    ) -> list[WorkflowRow]:
        """This executor's PENDING workflows (of these versions); with ``claim_token``, only
        those a queue claim under that token took."""
        marks = ", ".join(["%s"] * len(versions))
        params: list[Any] = [executor_id, *versions]
        token_clause = ""
        if claim_token is not None:
            token_clause = " AND substr(run_token, 1, %s) = %s"
            params.extend([len(claim_token), claim_token])
        rows = self.read_all(
            f"SELECT {WORKFLOW_COLUMNS} FROM {self.workflows_by('durable_workflows_pending_idx')} "
            "WHERE status = 'PENDING' AND executor_id = %s "
            f"AND (application_version IS NULL OR application_version IN ({marks})){token_clause} "
            "ORDER BY created_at",
            params,
        )
        return [WorkflowRow.from_tuple(r) for r in rows]

    def set_status(
        self,
        workflow_ids: Sequence[str],
        status: str,
        from_statuses: Sequence[str],
        error: str | None = None,
    ) -> list[str]:
        """Move workflows between statuses; returns the IDs that changed."""
        if not workflow_ids:
            return []
        t = self.now_ms()
        finished = t if status in TERMINAL else None
        rows = self.fetchall(
            "UPDATE durable_workflows SET status = %s, updated_at = %s, "
            "finished_at = COALESCE(%s, finished_at), error = COALESCE(%s, error) "
            f"WHERE workflow_id IN ({', '.join(['%s'] * len(workflow_ids))}) "
            f"AND status || '' IN ({', '.join(['%s'] * len(from_statuses))}) RETURNING workflow_id",
            (status, t, finished, error, *workflow_ids, *from_statuses),
        )
        for r in rows:
            self.after_commit("w", r[0])
        return [r[0] for r in rows]

    def descendants(self, workflow_id: str) -> list[str]:
        found, frontier = [], [workflow_id]
        while frontier:
            rows = self.fetchall(
                "SELECT workflow_id FROM durable_workflows WHERE parent_workflow_id IN "
                f"({', '.join(['%s'] * len(frontier))})",
                frontier,
            )
            frontier = [r[0] for r in rows if r[0] not in found]
            found.extend(frontier)
        return found

    _DEADLINE_DUE = "status IN ('PENDING', 'ENQUEUED') AND deadline IS NOT NULL AND deadline < %s"

    def earliest_deadline(self) -> int | None:
        """The nearest deadline of an in-flight workflow (a test clock advances to it)."""
        row = self.fetchone(
            "SELECT MIN(deadline) FROM durable_workflows WHERE status IN ('PENDING', 'ENQUEUED') "
            "AND deadline IS NOT NULL"
        )
        return row[0] if row else None

    def expire_deadlines(self) -> list[str]:
        """Cancel in-flight workflows past their deadline. The test for any is one probe of
        the deadline index on the read path; the write happens only when one is due."""
        t = self.now_ms()
        probe = f"SELECT 1 FROM {self.workflows_by('durable_workflows_deadline_idx')} WHERE "
        if not self.read_all(f"{probe}{self._DEADLINE_DUE} LIMIT 1", (t,)):
            return []
        rows = self.fetchall(
            "UPDATE durable_workflows SET status = 'CANCELLED', updated_at = %s, finished_at = %s, "
            f"error = %s WHERE {self._DEADLINE_DUE} RETURNING workflow_id",
            (
                t,
                t,
                '{"type":"builtins:TimeoutError","message":"workflow timed out"}',
                t,
            ),
        )
        for r in rows:
            self.after_commit("w", r[0])
        return [r[0] for r in rows]

    # -- steps -----------------------------------------------------------------------------

    def load_steps(self, workflow_id: str) -> list[StepRow]:
        rows = self.read_all(
            f"SELECT {STEP_COLUMNS} FROM durable_steps WHERE workflow_id = %s ORDER BY step_id",
            (workflow_id,),
        )
        return [StepRow(*r) for r in rows]

    ownership_check = f"SELECT 1 FROM durable_workflows WHERE {OWNED}"

    @functools.cached_property
    def _record_step_sql(self) -> str:
        """The checkpoint's INSERT, built once per store (its ownership check is dialect's)."""
        return (
            "INSERT INTO durable_steps (workflow_id, step_id, name, output, error, "
            "child_workflow_id, started_at, finished_at, attempts) "
            f"SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s WHERE EXISTS ({self.ownership_check})"
        )

    def record_step(
        self,
        workflow_id: str,
        run_token: str,
        step_id: int,
        name: str,
        output: str | None,
        error: str | None,
        child_workflow_id: str | None,
        started_at: int,
        conn: Any = None,
        attempts: int = 1,
        finished_at: int | None = None,
    ) -> None:
        """The checkpoint: one INSERT that succeeds only while this execution owns the workflow
        (``attempts``: how many times the step's body ran, recorded by that same INSERT).
        ``finished_at``: when the step ended, if that was before now (a deferred checkpoint)."""
        sql = self._record_step_sql
        params = (
            workflow_id,
            step_id,
            name,
            output,
            error,
            child_workflow_id,
            started_at,
            self.now_ms() if finished_at is None else finished_at,
            attempts,
            workflow_id,
            run_token,
        )
        try:
            if conn is not None:
                count = self.execute(conn, sql, params).rowcount
            else:
                count = self.run(sql, params)
        except Exception as exc:
            if not self.is_unique_violation(exc):
                raise
            if conn is None and self._step_is_ours(workflow_id, run_token, step_id, name):
                return  # a retried INSERT whose first attempt had committed
            raise OwnershipLost(workflow_id) from None
        if count != 1:
            raise OwnershipLost(workflow_id)

    @contextlib.contextmanager
    def _once(self, workflow_id: str, run_token: str, step_id: int, name: str) -> Iterator[Any]:
        """A transaction that writes a step's effects and its checkpoint. Retried after a lost
        reply, it finds the checkpoint already there: if it is this execution's, the first
        attempt committed and the step is done (the effects are not written twice); else the
        workflow is no longer this execution's (``OwnershipLost``), never a raw driver error."""
        try:
            with self.transaction() as conn:
                yield conn
        except Exception as exc:
            if not (isinstance(exc, OwnershipLost) or self.is_unique_violation(exc)):
                raise
            if not self._step_is_ours(workflow_id, run_token, step_id, name):
                raise OwnershipLost(workflow_id) from None

    def _step_is_ours(self, workflow_id: str, run_token: str, step_id: int, name: str) -> bool:
        row = self.fetchone(
            "SELECT s.name FROM durable_steps s JOIN durable_workflows w ON w.workflow_id = s.workflow_id "
            "WHERE s.workflow_id = %s AND s.step_id = %s AND w.run_token = %s AND w.status || '' = 'PENDING'",
            (workflow_id, step_id, run_token),
        )
        return row is not None and row[0] == name

    def list_steps(self, workflow_id: str) -> list[StepRow]:
        """The steps a person sees: without the internal wait marks (negative step IDs)."""
        return [s for s in self.load_steps(workflow_id) if s.step_id > 0]

    # -- messages --------------------------------------------------------------------------

    @whole
    def send_message(
        self,
        destination_id: str,
        topic: str,
        message: str,
        idempotency_key: str | None,
        step: StepCheckpoint | None = None,
    ) -> bool:
        """Store a message (once per idempotency key); with ``step``, checkpoint the sender's
        step in the same transaction. False when the destination does not exist."""
        with self.transaction() as conn:
            exists = self.execute(
                conn, "SELECT 1 FROM durable_workflows WHERE workflow_id = %s", (destination_id,)
            ).fetchone()
            if not exists:
                return False
            self.execute(
                conn,
                "INSERT INTO durable_notifications (destination_id, topic, message, "
                "idempotency_key, created_at) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (destination_id, topic, message, idempotency_key, self.now_ms()),
            )
            if step is not None:
                workflow_id, run_token, step_id, name, output, error, child_id, started = step
                self.record_step(
                    workflow_id,
                    run_token,
                    step_id,
                    name,
                    output,
                    error,
                    child_id,
                    started,
                    conn=conn,
                )
        self.after_commit("m", destination_id)
        return True

    def consume_message(
        self,
        workflow_id: str,
        run_token: str,
        step_id: int,
        topic: str,
        started_at: int,
        mark: tuple[str, str] | None = None,
    ) -> tuple[bool, str | None]:
        """Take the oldest message on the topic and checkpoint it as the recv step, atomically.
        ``mark`` (a wait mark's name and content): when no message is taken, it is recorded
        as step ``-step_id`` in the same transaction, while this execution owns the workflow
        (a recv about to wait records its deadline without a statement of its own)."""
        with self.transaction() as conn:
            row = self.execute(
                conn,
                "SELECT message_id, message FROM durable_notifications WHERE destination_id = %s "
                "AND topic = %s AND consumed_at IS NULL "
                f"ORDER BY message_id LIMIT 1{self.lock_suffix}",
                (workflow_id, topic),
            ).fetchone()
            if row is None:
                if mark is not None:
                    name, output = mark
                    now = self.now_ms()
                    self.record_step(
                        workflow_id, run_token, -step_id, name, output, None, None, now, conn=conn
                    )
                return False, None
            self.execute(
                conn,
                "UPDATE durable_notifications SET consumed_at = %s WHERE message_id = %s",
                (self.now_ms(), row[0]),
            )
            self.record_step(
                workflow_id,
                run_token,
                step_id,
                "durable.recv",
                row[1],
                None,
                None,
                started_at,
                conn=conn,
            )
            return True, row[1]

    lock_suffix = ""

    # -- events ----------------------------------------------------------------------------

    @whole
    def set_event(
        self, workflow_id: str, run_token: str, step_id: int, key: str, value: str, started_at: int
    ) -> None:
        t = self.now_ms()
        with self._once(workflow_id, run_token, step_id, "durable.set_event") as conn:
            self.execute(
                conn,
                "INSERT INTO durable_events (workflow_id, key, value, step_id, updated_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (workflow_id, key) DO UPDATE SET "
                "value = excluded.value, step_id = excluded.step_id, updated_at = excluded.updated_at",
                (workflow_id, key, value, step_id, t),
            )
            self.execute(
                conn,
                "INSERT INTO durable_event_history (workflow_id, step_id, key, value) "
                "VALUES (%s, %s, %s, %s)",
                (workflow_id, step_id, key, value),
            )
            self.record_step(
                workflow_id,
                run_token,
                step_id,
                "durable.set_event",
                None,
                None,
                None,
                started_at,
                conn=conn,
            )
        self.after_commit("e", workflow_id)

    def get_event(self, workflow_id: str, key: str) -> tuple[bool, str | None]:
        row = self.read_one(
            "SELECT value FROM durable_events WHERE workflow_id = %s AND key = %s",
            (workflow_id, key),
        )
        return (True, row[0]) if row else (False, None)

    # -- streams ---------------------------------------------------------------------------

    @whole
    def write_stream(
        self,
        workflow_id: str,
        run_token: str,
        step_id: int,
        key: str,
        value: str | None,
        is_close: bool,
        started_at: int,
    ) -> None:
        name = "durable.close_stream" if is_close else "durable.write_stream"
        with self._once(workflow_id, run_token, step_id, name) as conn:
            self.execute(
                conn,
                "INSERT INTO durable_streams (workflow_id, key, seq, value, is_close, step_id, "
                "created_at) SELECT %s, %s, COALESCE(MAX(seq), 0) + 1, %s, %s, %s, %s "
                "FROM durable_streams WHERE workflow_id = %s AND key = %s",
                (workflow_id, key, value, int(is_close), step_id, self.now_ms(), workflow_id, key),
            )
            self.record_step(
                workflow_id, run_token, step_id, name, None, None, None, started_at, conn=conn
            )
        self.after_commit("s", workflow_id)

    def append_stream(
        self, workflow_id: str, run_token: str, step_id: int, key: str, value: str
    ) -> None:
        """A stream value appended by a running step: one INSERT, no step row, that succeeds
        only while ``run_token``'s execution owns the workflow (else ``OwnershipLost``). Two
        appends racing for the same position (steps running concurrently in an async
        workflow, on PostgreSQL) collide on the key: the loser takes the next one."""
        sql = (
            "INSERT INTO durable_streams (workflow_id, key, seq, value, is_close, step_id, "
            "created_at) SELECT %s, %s, (SELECT COALESCE(MAX(seq), 0) + 1 FROM durable_streams "
            "WHERE workflow_id = %s AND key = %s), %s, 0, %s, %s "
            f"WHERE EXISTS ({self.ownership_check})"
        )
        params = (workflow_id, key, workflow_id, key, value, step_id, self.now_ms())
        count = 0
        for attempt in range(10):
            try:
                count = self.run(sql, (*params, workflow_id, run_token))
                break
            except Exception as exc:
                if attempt == 9 or not self.is_unique_violation(exc):
                    raise
        if count != 1:
            raise OwnershipLost(workflow_id)
        self.after_commit("s", workflow_id)

    def read_stream(self, workflow_id: str, key: str, after_seq: int) -> list[tuple[Any, ...]]:
        return self.fetchall(
            "SELECT seq, value, is_close FROM durable_streams WHERE workflow_id = %s AND key = %s "
            "AND seq > %s ORDER BY seq LIMIT 500",
            (workflow_id, key, after_seq),
        )

    # -- history (export, test assertions) -------------------------------------------------

    def list_messages(self, destination_id: str) -> list[tuple[Any, ...]]:
        """Messages sent to a workflow, in order: (topic, message, created_at, consumed_at)."""
        return self.fetchall(
            "SELECT topic, message, created_at, consumed_at FROM durable_notifications "
            "WHERE destination_id = %s ORDER BY message_id",
            (destination_id,),
        )

    def list_messages_sent_by(self, workflow_id: str) -> list[tuple[Any, ...]]:
        """Messages a workflow sent (their idempotency key is ``<id>:<step>``), in order:
        (destination_id, topic, message)."""
        prefix = f"{workflow_id}:"
        return self.fetchall(
            "SELECT destination_id, topic, message FROM durable_notifications "
            "WHERE substr(idempotency_key, 1, %s) = %s ORDER BY message_id",
            (len(prefix), prefix),
        )

    def list_event_history(self, workflow_id: str) -> list[tuple[Any, ...]]:
        """Every ``set_event`` of a workflow, in order: (step_id, key, value)."""
        return self.fetchall(
            "SELECT step_id, key, value FROM durable_event_history WHERE workflow_id = %s "
            "ORDER BY step_id",
            (workflow_id,),
        )

    def list_stream_values(self, workflow_id: str) -> list[tuple[Any, ...]]:
        """Every stream value of a workflow: (key, seq, value, is_close, step_id)."""
        return self.fetchall(
            "SELECT key, seq, value, is_close, step_id FROM durable_streams "
            "WHERE workflow_id = %s ORDER BY key, seq",
            (workflow_id,),
        )

    # -- fork ------------------------------------------------------------------------------

    @whole
    def fork_workflow(self, source: WorkflowRow, new_row: WorkflowRow, start_step: int) -> None:
        with self.transaction() as conn:
            if not self.insert_workflow(new_row, conn=conn):
                from ..errors import WorkflowConflict

                raise WorkflowConflict(new_row.workflow_id, "an existing workflow", source.name)
            self.execute(
                conn,
                "INSERT INTO durable_steps (workflow_id, step_id, name, output, error, "
                "child_workflow_id, started_at, finished_at, attempts) SELECT %s, step_id, name, "
                "output, error, child_workflow_id, started_at, finished_at, attempts "
                "FROM durable_steps "
                "WHERE workflow_id = %s AND step_id > 0 AND step_id < %s",
                (new_row.workflow_id, source.workflow_id, start_step),
            )
            self.execute(
                conn,
                "INSERT INTO durable_event_history (workflow_id, step_id, key, value) "
                "SELECT %s, step_id, key, value FROM durable_event_history "
                "WHERE workflow_id = %s AND step_id < %s",
                (new_row.workflow_id, source.workflow_id, start_step),
            )
            self.execute(
                conn,
                "INSERT INTO durable_events (workflow_id, key, value, step_id, updated_at) "
                "SELECT h.workflow_id, h.key, h.value, h.step_id, %s FROM durable_event_history h "
                "WHERE h.workflow_id = %s AND h.step_id = (SELECT MAX(h2.step_id) FROM "
                "durable_event_history h2 WHERE h2.workflow_id = h.workflow_id AND h2.key = h.key)",
                (self.now_ms(), new_row.workflow_id),
            )
            self.execute(
                conn,
                "INSERT INTO durable_streams (workflow_id, key, seq, value, is_close, step_id, "
                "created_at) SELECT %s, key, seq, value, is_close, step_id, created_at "
                "FROM durable_streams WHERE workflow_id = %s AND step_id < %s",
                (new_row.workflow_id, source.workflow_id, start_step),
            )

    # -- executors -------------------------------------------------------------------------

    def heartbeat(
        self, executor_id: str, version: str, hostname: str, pid: int, lease_ms: int
    ) -> bool:
        """Renew (or take) the lease on ``executor_id`` for this process (hostname, pid).
        False, changing nothing, when another process holds it with a heartbeat fresher than
        the lease."""
        t = self.now_ms()
        return (
            self.run(
                "INSERT INTO durable_executors (executor_id, application_version, hostname, "
                "pid, started_at, heartbeat_at) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (executor_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, "
                "application_version = excluded.application_version, "
                "hostname = excluded.hostname, pid = excluded.pid "
                "WHERE (durable_executors.hostname = excluded.hostname "
                "AND durable_executors.pid = excluded.pid) OR durable_executors.heartbeat_at < %s",
                (executor_id, version, hostname, pid, t, t, t - lease_ms),
            )
            == 1
        )

    def executor_holder(self, executor_id: str) -> tuple[str | None, int | None, int] | None:
        """(hostname, pid, heartbeat_at) of the process registered under ``executor_id``."""
        row = self.fetchone(
            "SELECT hostname, pid, heartbeat_at FROM durable_executors WHERE executor_id = %s",
            (executor_id,),
        )
        return None if row is None else (row[0], row[1], int(row[2]))

    def take_executor(
        self,
        executor_id: str,
        version: str,
        hostname: str,
        pid: int,
        holder: tuple[str | None, int | None, int],
    ) -> bool:
        """Take ``executor_id`` from ``holder`` (a process known to be dead), unless the row
        changed since it was read."""
        t = self.now_ms()
        return (
            self.run(
                "UPDATE durable_executors SET hostname = %s, pid = %s, application_version = %s, "
                "started_at = %s, heartbeat_at = %s WHERE executor_id = %s AND hostname = %s "
                "AND pid = %s AND heartbeat_at = %s",
                (hostname, pid, version, t, t, executor_id, *holder),
            )
            == 1
        )

    def remove_executor(self, executor_id: str) -> None:
        self.run("DELETE FROM durable_executors WHERE executor_id = %s", (executor_id,))

    def remove_dead_executors(self, heartbeat_before: int, keep: str) -> int:
        """Delete the rows of executors whose last heartbeat is older than ``heartbeat_before``
        and that hold no PENDING workflow any more (their work was adopted), except ``keep``
        (the caller's own). One statement: a row renewed meanwhile, or whose executor still
        holds work, stays. The check of held work is one probe of the pending index."""
        return self.run(
            "DELETE FROM durable_executors WHERE heartbeat_at < %s AND executor_id <> %s "
            "AND NOT EXISTS (SELECT 1 FROM durable_workflows w WHERE w.status = 'PENDING' "
            "AND w.executor_id = durable_executors.executor_id)",
            (heartbeat_before, keep),
        )

    def orphaned_workflows(
        self, lease_ms: int, versions: Sequence[str], limit: int = 1000
    ) -> list[tuple[Any, ...]]:
        """PENDING workflows whose executor's lease expired (or that never had a heartbeat)."""
        cutoff = self.now_ms() - lease_ms
        return self.read_all(
            "SELECT w.workflow_id, w.run_token, w.executor_id FROM durable_workflows w "
            "LEFT JOIN durable_executors e ON e.executor_id = w.executor_id "
            "WHERE w.status = 'PENDING' AND (e.executor_id IS NULL OR e.heartbeat_at < %s) "
            "AND w.updated_at < %s "
            f"AND (w.application_version IS NULL OR w.application_version IN ({', '.join(['%s'] * len(versions))})) "
            "ORDER BY w.created_at LIMIT %s",
            (cutoff, cutoff, *versions, limit),
        )

    # -- queues ----------------------------------------------------------------------------

    def claim_from_queue(
        self, claim: QueueClaim, executor_id: str, token_prefix: str
    ) -> list[WorkflowRow]:
        """Claim a batch of ``claim``'s queue in one transaction: its stored settings (none
        when paused), the room its limits leave, the candidates, marked PENDING here under
        run tokens that start with ``token_prefix``. (The one claim; PostgreSQL wraps it in
        its outage retry.)"""
        t = self.now_ms()
        with self.transaction() as conn:
            applied = self._with_settings(conn, claim)
            if applied is None:
                return []
            claim = applied
            self._serialize_claimers(conn, claim)
            room = self._room(conn, claim, t)
            if room <= 0:
                return []
            ids = self._claim_candidates(conn, claim, room, t)
            return self._mark_claimed(conn, ids, executor_id, token_prefix, t)

    def _serialize_claimers(self, conn: Any, claim: QueueClaim) -> None:
        """Make the claimers of a queue with a global budget take turns, so that counting
        the budget and claiming within it cannot interleave. Nothing to do where the
        transaction already holds the database's one write lock (SQLite's BEGIN IMMEDIATE)."""

    def _with_settings(self, conn: Any, claim: QueueClaim) -> QueueClaim | None:
        """``claim`` under the queue's stored settings, read in the claim's own transaction:
        a change committed before the claim began binds it. None when the queue is paused."""
        row = self.execute(
            conn,
            f"SELECT {QUEUE_SETTINGS_COLUMNS} FROM durable_queue_settings WHERE queue_name = %s",
            (claim.name,),
        ).fetchone()
        return claim if row is None else _queue_settings(row).apply(claim)

    # -- queue settings (managed at run time) ----------------------------------------------

    def queue_settings(self, queue_name: str | None = None) -> list[QueueSettings]:
        """Every queue's stored settings (a small table: one row per managed queue)."""
        if queue_name is None:
            rows = self.fetchall(
                f"SELECT {QUEUE_SETTINGS_COLUMNS} FROM durable_queue_settings ORDER BY queue_name"
            )
        else:
            rows = self.fetchall(
                f"SELECT {QUEUE_SETTINGS_COLUMNS} FROM durable_queue_settings "
                "WHERE queue_name = %s",
                (queue_name,),
            )
        return [_queue_settings(r) for r in rows]

    #: The override columns ``change_queue_settings`` may set, with their value for a new row.
    QUEUE_OVERRIDES = {
        "paused": 0,
        "concurrency": None,
        "worker_concurrency": None,
        "rate_limit_count": None,
        "rate_limit_period": None,
    }

    def change_queue_settings(self, queue_name: str, changes: dict[str, Any]) -> None:
        """Set some override columns of a queue (others keep their value), creating its row.
        One statement, so concurrent changes of different columns do not undo each other."""
        unknown = set(changes) - set(self.QUEUE_OVERRIDES)
        if unknown:
            raise ValueError(f"not queue settings: {sorted(unknown)}")
        values = [changes.get(k, default) for k, default in self.QUEUE_OVERRIDES.items()]
        flags = [k in changes for k in self.QUEUE_OVERRIDES]
        self.run(
            "INSERT INTO durable_queue_settings (queue_name, paused, concurrency, "
            "worker_concurrency, rate_limit_count, rate_limit_period, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (queue_name) DO UPDATE SET "
            "paused = CASE WHEN %s THEN excluded.paused ELSE durable_queue_settings.paused END, "
            "concurrency = CASE WHEN %s THEN excluded.concurrency "
            "ELSE durable_queue_settings.concurrency END, "
            "worker_concurrency = CASE WHEN %s THEN excluded.worker_concurrency "
            "ELSE durable_queue_settings.worker_concurrency END, "
            "rate_limit_count = CASE WHEN %s THEN excluded.rate_limit_count "
            "ELSE durable_queue_settings.rate_limit_count END, "
            "rate_limit_period = CASE WHEN %s THEN excluded.rate_limit_period "
            "ELSE durable_queue_settings.rate_limit_period END, "
            "updated_at = excluded.updated_at",
            (queue_name, *values, self.now_ms(), *flags),
        )
        self.after_commit("Q", queue_name)
        self.after_commit("q", queue_name)

    def publish_queue_declarations(
        self, declarations: Sequence[tuple[Any, ...]], version: str
    ) -> None:
        """Record the ``Queue(...)`` declarations of a launching worker, ``(name, concurrency,
        worker_concurrency, rate_count, rate_period)`` each, for views in processes without
        the code. Never touches the overrides (so it wakes no one)."""
        if not declarations:
            return
        t = self.now_ms()
        rows = [(*d, version, t, t) for d in declarations]
        self.run(
            "INSERT INTO durable_queue_settings (queue_name, declared_concurrency, "
            "declared_worker_concurrency, declared_rate_limit_count, declared_rate_limit_period, "
            "declared_version, declared_at, updated_at) VALUES "
            f"{', '.join(['(%s, %s, %s, %s, %s, %s, %s, %s)'] * len(rows))} "
            "ON CONFLICT (queue_name) DO UPDATE "
            "SET declared_concurrency = excluded.declared_concurrency, "
            "declared_worker_concurrency = excluded.declared_worker_concurrency, "
            "declared_rate_limit_count = excluded.declared_rate_limit_count, "
            "declared_rate_limit_period = excluded.declared_rate_limit_period, "
            "declared_version = excluded.declared_version, "
            "declared_at = excluded.declared_at",
            [value for row in rows for value in row],
        )

    # -- executors (the fleet view) --------------------------------------------------------

    def executors(self) -> list[tuple[Any, ...]]:
        """(executor_id, application_version, hostname, pid, started_at, heartbeat_at) of
        every registered executor, the freshest heartbeat first."""
        return self.read_all(
            "SELECT executor_id, application_version, hostname, pid, started_at, heartbeat_at "
            "FROM durable_executors ORDER BY heartbeat_at DESC, executor_id"
        )

    def running_by_executor(self) -> dict[str, dict[str, int]]:
        """How many PENDING workflows each executor holds, per workflow name (the partial
        pending index): the executors view, the dashboard and its change fingerprint."""
        rows = self.read_all(
            "SELECT executor_id, name, COUNT(*) FROM durable_workflows WHERE status = 'PENDING' "
            "AND executor_id IS NOT NULL GROUP BY executor_id, name"
        )
        held: dict[str, dict[str, int]] = {}
        for executor_id, name, count in rows:
            held.setdefault(executor_id, {})[name] = int(count)
        return held

    def running_ids(self, executor_id: str, limit: int) -> list[str]:
        """The oldest PENDING workflow IDs held by ``executor_id`` (the pending index)."""
        rows = self.read_all(
            "SELECT workflow_id FROM durable_workflows WHERE status = 'PENDING' "
            "AND executor_id = %s ORDER BY created_at LIMIT %s",
            (executor_id, limit),
        )
        return [r[0] for r in rows]

    def _claim_candidates(self, conn: Any, claim: QueueClaim, room: int, t: int) -> list[str]:
        if claim.partitioned:
            # Per partitioned queue, the key this store's last claim stopped at: the next
            # claim starts after it (round-robin). A hint for fairness, not for correctness.
            cursors = self.__dict__.setdefault("_partition_cursors", {})
            ids, cursors[claim.name] = partition_candidates(
                self, conn, claim, room, t, cursors.get(claim.name)
            )
            return ids
        filters, selectors = claim.filters()
        if claim.priority_enabled:
            # The best ``room`` of the due delayed rows (few: only those past their time are
            # read) and of the ready ones (from an index that holds no delayed row), merged.
            due = self.execute(
                conn,
                "SELECT workflow_id, priority, created_at FROM "
                f"{self.workflows_by('durable_workflows_delayed_idx')} "
                "WHERE queue_name = %s AND status = 'ENQUEUED' AND not_before IS NOT NULL "
                f"AND not_before <= %s {filters}"
                f"ORDER BY priority, created_at LIMIT %s{self.skip_locked_suffix}",
                (claim.name, t, *selectors, room),
            ).fetchall()
            ready = self.execute(
                conn,
                "SELECT workflow_id, priority, created_at FROM "
                f"{self.workflows_by('durable_workflows_priority_ready_idx')} "
                "WHERE queue_name = %s AND status = 'ENQUEUED' AND not_before IS NULL "
                f"{filters}ORDER BY priority, created_at LIMIT %s{self.skip_locked_suffix}",
                (claim.name, *selectors, room),
            ).fetchall()
            best = sorted([*due, *ready], key=lambda r: (r[1], r[2]))[:room]
            return [r[0] for r in best]
        # FIFO: delayed workflows that are due (by when they became due), then the oldest ready
        # ones; each from an index that holds only its kind, so neither walks the other.
        due = self.execute(
            conn,
            f"SELECT workflow_id FROM {self.workflows_by('durable_workflows_delayed_idx')} "
            "WHERE queue_name = %s AND status = 'ENQUEUED' AND not_before IS NOT NULL "
            f"AND not_before <= %s {filters}ORDER BY not_before LIMIT %s{self.skip_locked_suffix}",
            (claim.name, t, *selectors, room),
        ).fetchall()
        ids = [r[0] for r in due]
        if len(ids) < room:
            ready = self.execute(
                conn,
                f"SELECT workflow_id FROM {self.workflows_by('durable_workflows_ready_idx')} "
                "WHERE queue_name = %s AND status = 'ENQUEUED' AND not_before IS NULL "
                f"{filters}ORDER BY created_at LIMIT %s{self.skip_locked_suffix}",
                (claim.name, *selectors, room - len(ids)),
            ).fetchall()
            ids.extend(r[0] for r in ready)
        return ids

    skip_locked_suffix = ""

    def _room(self, conn: Any, claim: QueueClaim, t: int) -> int:
        room = claim.limit
        if claim.concurrency is not None:
            running = self.execute(
                conn,
                f"SELECT COUNT(*) FROM {self.workflows_by('durable_workflows_running_idx')} "
                "WHERE queue_name = %s AND status = 'PENDING'",
                (claim.name,),
            ).fetchone()[0]
            room = min(room, claim.concurrency - running)
        if claim.rate_limit is not None:
            n, period = claim.rate_limit
            started = self.execute(
                conn,
                f"SELECT COUNT(*) FROM {self.workflows_by('durable_workflows_queue_started_idx')} "
                "WHERE queue_name = %s AND started_at > %s",
                (claim.name, t - int(period * 1000)),
            ).fetchone()[0]
            room = min(room, n - started)
        return room

    def _mark_claimed(
        self, conn: Any, ids: list[str], executor_id: str, token_prefix: str, t: int
    ) -> list[WorkflowRow]:
        """Mark the candidates claimed: one UPDATE for the whole batch (one round trip, not
        one per workflow); rows another claimer took meanwhile are left out. Returned in
        candidate order."""
        if not ids:
            return []
        rows = self.execute(
            conn,
            f"UPDATE durable_workflows SET {CLAIM_SET} "
            f"WHERE workflow_id IN ({', '.join(['%s'] * len(ids))}) "
            f"AND status || '' = 'ENQUEUED' RETURNING {WORKFLOW_COLUMNS}{self.claimed_has_steps}",
            (executor_id, token_prefix, t, t, t, t, *ids),
        ).fetchall()
        width = len(_WORKFLOW_FIELDS)
        by_id = {}
        for r in rows:
            row = WorkflowRow.from_tuple(r[:width])
            if len(r) > width:
                row.has_steps = bool(r[width])
            by_id[row.workflow_id] = row
        return [by_id[wid] for wid in ids if wid in by_id]

    #: Added to the claim's RETURNING where the dialect allows a subquery there (PostgreSQL):
    #: whether each claimed workflow has recorded steps (resumed, forked), so that the batch's
    #: steps are read only when one has (most claimed workflows are new and have none).
    claimed_has_steps = ""

    def load_steps_of(self, workflow_ids: Sequence[str]) -> dict[str, list[StepRow]]:
        """The recorded steps of several workflows in one statement (a claimed batch: most
        have none, and a query per workflow would be a round trip per started workflow)."""
        found: dict[str, list[StepRow]] = {wid: [] for wid in workflow_ids}
        for start in range(0, len(workflow_ids), 500):
            chunk = list(workflow_ids[start : start + 500])
            rows = self.fetchall(
                f"SELECT workflow_id, {STEP_COLUMNS} FROM durable_steps "
                f"WHERE workflow_id IN ({', '.join(['%s'] * len(chunk))}) "
                "ORDER BY workflow_id, step_id",
                chunk,
            )
            for r in rows:
                found[r[0]].append(StepRow(*r[1:]))
        return found

    def enqueued_times(self, now: int) -> tuple[int | None, bool]:
        """Over every ENQUEUED workflow: the earliest ``not_before`` after ``now``, and whether
        any may start at ``now`` (the test engine's one look at the queues per clock step)."""
        rows = self.read_all(
            "SELECT MIN(CASE WHEN not_before > %s THEN not_before END), "
            "MAX(CASE WHEN not_before IS NULL OR not_before <= %s THEN 1 ELSE 0 END) "
            "FROM durable_workflows WHERE status = 'ENQUEUED'",
            (now, now),
        )
        if not rows:
            return None, False
        return rows[0][0], bool(rows[0][1])

    def earliest_delayed(self, queue_name: str) -> int | None:
        rows = self.read_all(
            f"SELECT MIN(not_before) FROM {self.workflows_by('durable_workflows_delayed_idx')} "
            "WHERE queue_name = %s "
            "AND status = 'ENQUEUED' AND not_before IS NOT NULL",
            (queue_name,),
        )
        return rows[0][0] if rows else None

    def adopt_unkeyed(self, queue_name: str) -> int:
        """Put a partitioned queue's ENQUEUED rows that have no partition key (enqueued by a
        ``Client`` without one, or before the queue was declared partitioned) in the default
        partition, ``""``, where the fair claim finds them. Returns how many."""
        return self.run(
            "UPDATE durable_workflows SET partition_key = '' WHERE queue_name = %s "
            "AND status = 'ENQUEUED' AND partition_key IS NULL",
            (queue_name,),
        )

    def partition_backlog(
        self, queue_name: str | None, now: int, limit: int | None = None
    ) -> list[tuple[str, str, int, int, int | None]]:
        """Per (queue, partition key) with work in flight: (queue, key, ENQUEUED, PENDING,
        since when its oldest ENQUEUED row has been claimable), the deepest first, at most
        ``limit`` rows. Partitioned rows only (the partial indexes hold them)."""
        where = "queue_name = %s AND " if queue_name is not None else "queue_name IS NOT NULL AND "
        params: list[Any] = [now]
        if queue_name is not None:
            params.append(queue_name)
        sql = (
            "SELECT queue_name, partition_key, "
            "SUM(CASE WHEN status = 'ENQUEUED' THEN 1 ELSE 0 END) AS waiting, "
            "SUM(CASE WHEN status = 'PENDING' THEN 1 ELSE 0 END), "
            "MIN(CASE WHEN status = 'ENQUEUED' AND (not_before IS NULL OR not_before <= %s) "
            "THEN COALESCE(not_before, created_at) END) "
            f"FROM durable_workflows WHERE {where}partition_key IS NOT NULL "
            "AND status IN ('ENQUEUED', 'PENDING') GROUP BY queue_name, partition_key "
            "ORDER BY waiting DESC, queue_name, partition_key"
        )
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        rows = self.read_all(sql, params)
        return [
            (r[0], r[1], int(r[2] or 0), int(r[3] or 0), None if r[4] is None else int(r[4]))
            for r in rows
        ]

    def unknown_enqueued_names(self, queue_names: Sequence[str], known: Sequence[str]) -> list[str]:
        if not queue_names:
            return []
        known = known or ("",)
        # The ENQUEUED rows (the status index), not the queues' history.
        rows = self.read_all(
            "SELECT DISTINCT name FROM "
            f"{self.workflows_by('durable_workflows_status_created_idx')} WHERE status = 'ENQUEUED' "
            f"AND queue_name IN ({', '.join(['%s'] * len(queue_names))}) "
            f"AND name NOT IN ({', '.join(['%s'] * len(known))})",
            (*queue_names, *known),
        )
        return [r[0] for r in rows]

    def enqueued_queue_names(self, names: Sequence[str]) -> list[str]:
        """The queues holding ENQUEUED workflows of these names (an integration serving queues
        that are named only when work is enqueued: Django tasks with any ``queue_name``)."""
        if not names:
            return []
        rows = self.read_all(
            "SELECT DISTINCT queue_name FROM durable_workflows WHERE status = 'ENQUEUED' "
            f"AND name IN ({', '.join(['%s'] * len(names))}) AND queue_name IS NOT NULL",
            tuple(names),
        )
        return sorted(r[0] for r in rows)

    def queue_counts_by_version(self) -> list[tuple[Any, ...]]:
        """``(queue, status, application_version, count)`` of ENQUEUED and PENDING workflows:
        which release's work waits (or runs) on each queue."""
        return self.read_all(
            "SELECT queue_name, status, application_version, COUNT(*) FROM durable_workflows "
            "WHERE queue_name IS NOT NULL AND status IN ('ENQUEUED', 'PENDING') "
            "GROUP BY queue_name, status, application_version ORDER BY queue_name"
        )

    def queue_counts(self) -> list[tuple[Any, ...]]:
        return self.read_all(
            "SELECT queue_name, status, COUNT(*) FROM durable_workflows WHERE queue_name IS NOT NULL "
            "AND status IN ('ENQUEUED', 'PENDING') GROUP BY queue_name, status ORDER BY queue_name"
        )

    def queue_backlog(self, now: int) -> list[tuple[str, int, int, int | None]]:
        """Per queue with work in flight: (queue, ENQUEUED, PENDING, since when the oldest
        ENQUEUED row has been claimable: its ``not_before`` or its creation, None when every
        enqueued row is still delayed). Only in-flight rows are read: the partial indexes
        hold them, not the history. For the dashboard and the "queue stuck" alert."""
        rows = self.read_all(
            "SELECT queue_name, "
            "SUM(CASE WHEN status = 'ENQUEUED' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN status = 'PENDING' THEN 1 ELSE 0 END), "
            "MIN(CASE WHEN status = 'ENQUEUED' AND (not_before IS NULL OR not_before <= %s) "
            "THEN COALESCE(not_before, created_at) END) "
            "FROM durable_workflows WHERE queue_name IS NOT NULL "
            "AND status IN ('ENQUEUED', 'PENDING') GROUP BY queue_name ORDER BY queue_name",
            (now,),
        )
        return [
            (r[0], int(r[1] or 0), int(r[2] or 0), None if r[3] is None else int(r[3]))
            for r in rows
        ]

    def oldest_ready(self, queue_name: str) -> str | None:
        """The ID of the oldest ENQUEUED, undelayed workflow of a queue (the ready index)."""
        rows = self.read_all(
            f"SELECT workflow_id FROM {self.workflows_by('durable_workflows_ready_idx')} "
            "WHERE queue_name = %s AND status = 'ENQUEUED' AND not_before IS NULL "
            "ORDER BY created_at LIMIT 1",
            (queue_name,),
        )
        return rows[0][0] if rows else None

    def destinations_with_messages(self, workflow_ids: Sequence[str]) -> list[str]:
        found: list[str] = []
        for start in range(0, len(workflow_ids), 500):
            chunk = list(workflow_ids[start : start + 500])
            rows = self.fetchall(
                "SELECT DISTINCT destination_id FROM durable_notifications WHERE consumed_at IS NULL "
                f"AND destination_id IN ({', '.join(['%s'] * len(chunk))})",
                chunk,
            )
            found.extend(r[0] for r in rows)
        return found

    def clear_deadline(self, workflow_id: str) -> None:
        self.run(
            "UPDATE durable_workflows SET deadline = NULL WHERE workflow_id = %s", (workflow_id,)
        )

    def forget_failed_last_step(self, workflow_id: str) -> None:
        """Drop the last step if it recorded an error, so that resuming runs it again."""
        self.run(
            "DELETE FROM durable_steps WHERE workflow_id = %s AND error IS NOT NULL AND step_id = "
            "(SELECT MAX(step_id) FROM durable_steps WHERE workflow_id = %s)",
            (workflow_id, workflow_id),
        )

    def requeue_stopped(self, workflow_id: str, default_queue: str) -> bool:
        """Re-enqueue a CANCELLED, failed or dead-lettered workflow for any worker."""
        changed = self.run(
            "UPDATE durable_workflows SET status = 'ENQUEUED', queue_name = COALESCE(queue_name, %s), "
            "executor_id = NULL, run_token = NULL, recovery_attempts = 0, deadline = NULL, "
            "updated_at = %s, finished_at = NULL, error = NULL WHERE workflow_id = %s AND status || '' IN "
            "('CANCELLED', 'ERROR', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')",
            (default_queue, self.now_ms(), workflow_id),
        )
        return changed == 1

    # -- housekeeping ----------------------------------------------------------------------

    #: How many workflows one garbage-collection transaction deletes.
    gc_batch = 500

    def yield_to_writers(self) -> None:
        """Between two housekeeping transactions: let waiting writers go first."""

    def garbage_collect(
        self,
        finished_before: int,
        batch: int | None = None,
        *,
        statuses: Sequence[str] = TERMINAL,
        max_batches: int | None = None,
    ) -> int:
        """Delete workflows that finished before ``finished_before`` (ms), oldest first, with
        their steps, events, streams and messages. Each batch of ``batch`` workflows is its own
        short transaction, so checkpoints (and SQLite's WAL checkpointer) wait for one batch
        at most, and memory stays flat however much history goes. ``statuses`` (terminal ones)
        narrows what goes; ``max_batches`` bounds one call (the rest waits for the next)."""
        batch = int(batch or self.gc_batch)
        wanted = tuple(s for s in TERMINAL if s in statuses)  # literals only, never input
        if not wanted:
            return 0
        deleted = batches = 0
        while True:
            if deleted:
                self.yield_to_writers()
            count = self._collect_batch(finished_before, batch, wanted)
            deleted += count
            batches += 1
            if count < batch or (max_batches is not None and batches >= max_batches):
                return deleted

    @whole
    def _collect_batch(
        self, finished_before: int, batch: int, statuses: tuple[str, ...] = TERMINAL
    ) -> int:
        terminal = ", ".join(f"'{s}'" for s in statuses)
        source = self.workflows_by("durable_workflows_finished_idx")
        with self.transaction() as conn:
            ids = [
                r[0]
                for r in self.execute(
                    conn,
                    f"SELECT workflow_id FROM {source} WHERE finished_at < %s "
                    f"AND status IN ({terminal}) ORDER BY finished_at LIMIT %s",  # noqa: S608
                    (finished_before, batch),
                ).fetchall()
            ]
            if ids:
                marks = ", ".join(["%s"] * len(ids))
                for table, column in (
                    ("durable_steps", "workflow_id"),
                    ("durable_events", "workflow_id"),
                    ("durable_event_history", "workflow_id"),
                    ("durable_streams", "workflow_id"),
                    ("durable_notifications", "destination_id"),
                    ("durable_workflows", "workflow_id"),
                ):
                    self.execute(conn, f"DELETE FROM {table} WHERE {column} IN ({marks})", ids)  # noqa: S608
        return len(ids)

    # -- schedules -------------------------------------------------------------------------

    def insert_schedule(self, row: ScheduleRow) -> bool:
        """Store a new schedule; False (changing nothing) when the ID is taken."""
        return (
            self.run(
                f"INSERT INTO durable_schedules ({SCHEDULE_COLUMNS}) VALUES "
                f"({', '.join(['%s'] * 15)}) ON CONFLICT (schedule_id) DO NOTHING",
                row.values(),
            )
            == 1
        )

    def sync_code_schedule(self, row: ScheduleRow) -> None:
        """Record a ``@scheduled`` workflow as a code-defined schedule: created if missing,
        its cron brought up to date (from then on: ``last_tick`` moves to now, so a changed
        expression does not count the past as missed). Paused state and history are kept; a
        schedule of the same ID created through the API is left alone."""
        self.run(
            f"INSERT INTO durable_schedules ({SCHEDULE_COLUMNS}) VALUES "
            f"({', '.join(['%s'] * 15)}) ON CONFLICT (schedule_id) DO UPDATE SET "
            "last_tick = CASE WHEN durable_schedules.cron = excluded.cron "
            "THEN durable_schedules.last_tick ELSE excluded.last_tick END, "
            "cron = excluded.cron, updated_at = excluded.updated_at "
            "WHERE durable_schedules.source = 'code' AND durable_schedules.cron <> excluded.cron",
            row.values(),
        )

    def list_schedules(self) -> list[ScheduleRow]:
        rows = self.read_all(
            f"SELECT {SCHEDULE_COLUMNS} FROM durable_schedules ORDER BY schedule_id"
        )
        return [ScheduleRow.from_tuple(r) for r in rows]

    def get_schedule(self, schedule_id: str) -> ScheduleRow | None:
        if not storable_text(schedule_id):
            return None
        row = self.fetchone(
            f"SELECT {SCHEDULE_COLUMNS} FROM durable_schedules WHERE schedule_id = %s",
            (schedule_id,),
        )
        return None if row is None else ScheduleRow.from_tuple(row)

    def update_schedule(self, row: ScheduleRow, retime: bool, now: int) -> bool:
        """Write a schedule's definition (not its tick history). With ``retime`` (its cron or
        time zone changed) ticks up to ``now`` count as consumed, so the change does not make
        past ticks of the new timing look missed."""
        return (
            self.run(
                "UPDATE durable_schedules SET workflow_name = %s, cron = %s, timezone = %s, "
                "inputs = %s, queue_name = %s, catchup = %s, max_catchup = %s, overlap = %s, "
                "paused = %s, updated_at = %s, last_tick = CASE WHEN %s = 1 AND "
                "(last_tick IS NULL OR last_tick < %s) THEN %s ELSE last_tick END "
                "WHERE schedule_id = %s",
                (
                    row.workflow_name, row.cron, row.timezone, row.inputs, row.queue_name,
                    row.catchup, row.max_catchup, row.overlap, int(row.paused), now,
                    int(retime), now, now, row.schedule_id,
                ),
            )
            == 1
        )  # fmt: skip

    def set_schedule_paused(self, schedule_id: str, paused: bool, now: int) -> bool:
        """Pause or resume. Resuming consumes the ticks that passed while paused (they are
        never caught up): the schedule goes on from its next tick after ``now``."""
        if paused:
            sql = "UPDATE durable_schedules SET paused = 1, updated_at = %s WHERE schedule_id = %s"
            params: tuple[Any, ...] = (now, schedule_id)
        else:
            sql = (
                "UPDATE durable_schedules SET last_tick = CASE WHEN paused = 1 AND "
                "(last_tick IS NULL OR last_tick < %s) THEN %s ELSE last_tick END, "
                "paused = 0, updated_at = %s WHERE schedule_id = %s"
            )
            params = (now, now, now, schedule_id)
        return self.run(sql, params) == 1

    def delete_schedule(self, schedule_id: str) -> bool:
        if not storable_text(schedule_id):
            return False
        return self.run("DELETE FROM durable_schedules WHERE schedule_id = %s", (schedule_id,)) == 1

    @whole
    def start_schedule_runs(
        self,
        schedule_id: str,
        rows: Sequence[WorkflowRow],
        *,
        consumed: tuple[int | None, int] | None,
        last_workflow_id: str | None,
    ) -> list[WorkflowRow] | None:
        """In one transaction: with ``consumed=(expected, new)``, move the schedule's
        ``last_tick`` from ``expected`` to ``new`` (a compare-and-swap: None, changing
        nothing, when another engine moved it first or the schedule was paused or deleted);
        store ``rows`` (a tick's ID that exists already is not stored again) and remember
        ``last_workflow_id`` as the schedule's latest run. Returns the rows this call created.

        A crash after the commit leaves PENDING rows owned by this executor, which its own
        sweep (or, once its lease expires, another worker) runs."""
        t = self.now_ms()
        with self.transaction() as conn:
            if consumed is not None:
                expected, new = consumed
                moved = self.execute(
                    conn,
                    "UPDATE durable_schedules SET last_tick = %s, "
                    "last_workflow_id = COALESCE(%s, last_workflow_id), updated_at = %s "
                    "WHERE schedule_id = %s AND paused = 0 AND COALESCE(last_tick, -1) = %s",
                    (new, last_workflow_id, t, schedule_id, -1 if expected is None else expected),
                ).rowcount
                if moved != 1:
                    return None
            elif last_workflow_id is not None:
                self.execute(
                    conn,
                    "UPDATE durable_schedules SET last_workflow_id = %s, updated_at = %s "
                    "WHERE schedule_id = %s",
                    (last_workflow_id, t, schedule_id),
                )
            created = [row for row in rows if self.insert_workflow(row, conn=conn)]
        for row in created:
            if row.status == "ENQUEUED" and row.queue_name:
                self.after_commit("q", row.queue_name)
        return created

    # -- request keys: the Idempotency-Key of an HTTP request -------------------------------

    def reserve_request_key(self, key: str, fingerprint: str, now: int, stale_before: int) -> str:
        """Reserve ``key`` for the request with ``fingerprint``. Returns ``"reserved"`` (this
        request may run: a new key, or an in-flight one last touched before ``stale_before``,
        whose request died), ``"done"`` (the same request already succeeded), ``"in_flight"``
        (the same request is running elsewhere) or ``"mismatch"`` (another request used it)."""
        with self.transaction() as conn:
            inserted = self.execute(
                conn,
                "INSERT INTO durable_request_keys (request_key, fingerprint, state, created_at, "
                "updated_at) VALUES (%s, %s, 'in_flight', %s, %s) "
                "ON CONFLICT (request_key) DO NOTHING",
                (key, fingerprint, now, now),
            ).rowcount
            if inserted == 1:
                return "reserved"
            row = self.execute(
                conn,
                "SELECT fingerprint, state, updated_at FROM durable_request_keys "
                "WHERE request_key = %s",
                (key,),
            ).fetchone()
            if row is None:  # released between the two statements: the caller may retry
                return "in_flight"
            if row[0] != fingerprint:
                return "mismatch"
            if row[1] == "done":
                return "done"
            if row[2] >= stale_before:
                return "in_flight"
            taken = self.execute(
                conn,
                "UPDATE durable_request_keys SET updated_at = %s WHERE request_key = %s "
                "AND state = 'in_flight' AND updated_at = %s",
                (now, key, row[2]),
            ).rowcount
            return "reserved" if taken == 1 else "in_flight"

    def finish_request_key(self, key: str, fingerprint: str, now: int, succeeded: bool) -> None:
        """After the request: ``done`` if it succeeded; otherwise the key is free again, so a
        retry of a failed request runs instead of being refused."""
        if succeeded:
            sql = (
                "UPDATE durable_request_keys SET state = 'done', updated_at = %s "
                "WHERE request_key = %s AND fingerprint = %s"
            )
            params: tuple[Any, ...] = (now, key, fingerprint)
        else:
            sql = (
                "DELETE FROM durable_request_keys WHERE request_key = %s AND fingerprint = %s "
                "AND state = 'in_flight'"
            )
            params = (key, fingerprint)
        with self.transaction() as conn:
            self.execute(conn, sql, params)

    def forget_request_keys(self, before: int) -> int:
        """Delete request keys last used before ``before`` (ms); garbage collection's part."""
        with self.transaction() as conn:
            return int(
                self.execute(
                    conn, "DELETE FROM durable_request_keys WHERE updated_at < %s", (before,)
                ).rowcount
            )

    def after_commit(self, kind: str, key: str) -> None:
        """Hook for in-process wake-ups after a commit (set by the engine); inside a joined
        transaction (``joining``), after that transaction commits."""
        if self.on_commit is None:
            return
        value = getattr(self._joined, "value", None)
        if value is not None and value[0] is self and value[2] is not None:
            wake = self.on_commit
            value[2](lambda: wake(kind, key))
            return
        self.on_commit(kind, key)
