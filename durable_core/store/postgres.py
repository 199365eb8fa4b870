"""The PostgreSQL system database: psycopg 3 with a connection pool, autocommit by default."""

from __future__ import annotations

import contextlib
import logging
import operator
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from ..errors import DatabaseConfigurationError, DatabaseUnavailable, StoreClosed
from .base import (
    _WORKFLOW_FIELDS,
    CLAIM_SET,
    OWNED,
    WORKFLOW_COLUMNS,
    FinalStep,
    Finish,
    OwnershipLost,
    QueueClaim,
    SQLStore,
    StepCheckpoint,
    WorkflowRow,
)
from .group_commit import GroupCommit
from .pool import PoolClosed, PoolTimeout
from .prepared import PreparedStatements
from .schema import MIGRATION_LOCK_KEY
from .urls import redact

log = logging.getLogger("durable_core.store")
_T = TypeVar("_T")
_first = operator.itemgetter(0)
_W_COLUMNS = ", ".join(f"w.{c}" for c in _WORKFLOW_FIELDS)
# A claim's RETURNING, as NULLs: the columns, has_steps, part and rank.
_NULLS = ", ".join(["NULL"] * (len(_WORKFLOW_FIELDS) + 3))
# The workflow columns that are not TEXT (the batch insert casts each column's array).
_COLUMN_TYPES = {
    **dict.fromkeys(("recovery_attempts", "max_recovery_attempts", "priority"), "integer"),
    **dict.fromkeys(
        ("not_before", "timeout_ms", "deadline", "created_at", "updated_at", "started_at")
        + ("finished_at",),
        "bigint",
    ),
}

# What the server says when retrying cannot help: these are settings to fix, not outages.
_CONFIGURATION_SQLSTATES = {"3D000", "28000", "28P01"}
_CONFIGURATION_MESSAGES = re.compile(
    r'database "[^"]*" does not exist|role "[^"]*" does not exist|authentication failed|'
    r"no pg_hba\.conf entry|no password supplied",
    re.IGNORECASE,
)


def configuration_error(exc: BaseException) -> DatabaseConfigurationError | None:
    """The error to raise instead of retrying, when ``exc`` means the database does not
    exist or refused our credentials."""
    text = redact(str(exc))
    found = _CONFIGURATION_MESSAGES.search(text)
    if found or getattr(exc, "sqlstate", None) in _CONFIGURATION_SQLSTATES:
        lines = text.strip().splitlines() or [""]
        detail = next((line for line in lines if found and found.group(0) in line), lines[0])
        detail = detail.strip().rstrip(".")
        return DatabaseConfigurationError(
            f"the system database refused this process: {detail}. Check the database name, "
            "user and password in the database URL (this is not retried)."
        )
    return None


class PostgresStore(SQLStore):
    dialect = "postgresql"
    # clock_timestamp(), not now(): now() is the start of the transaction.
    database_time_sql = "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint"
    lock_suffix = " FOR UPDATE SKIP LOCKED"
    skip_locked_suffix = " FOR UPDATE SKIP LOCKED"
    # FOR SHARE makes the ownership check wait for a concurrent claim of the same workflow and
    # re-check it, so a stale execution can never slip a checkpoint past a new owner.
    ownership_check = f"SELECT 1 FROM durable_workflows WHERE {OWNED} FOR SHARE"
    claimed_has_steps = ", EXISTS (SELECT 1 FROM durable_steps s WHERE s.workflow_id = durable_workflows.workflow_id)"

    def __init__(
        self,
        conninfo: str,
        min_size: int = 2,
        max_size: int = 20,
        application_name: str = "durable",
    ):
        import psycopg

        from ..clock import DatabaseClock
        from .pool import LifoPool

        self._psycopg = psycopg
        self.clock = DatabaseClock()
        self.conninfo = conninfo
        # application_name shows which engine a server connection belongs to (pg_stat_activity).
        self.application_name = application_name[:63]
        #: The step checkpoint and a workflow's INSERT run prepared through libpq (prepared.py).
        self.prepared = PreparedStatements()
        self.prepared.register(self._record_step_sql)
        self.prepared.register(self._INSERT_WORKFLOW)
        self.pool = LifoPool(
            conninfo,
            max_size=max_size,
            configure=self.prepared.adopt,
            autocommit=True,
            prepare_threshold=0,
            application_name=self.application_name,
        )
        # One connection of its own for the lease (see ``lease_connection``).
        self.lease_pool = LifoPool(
            conninfo,
            max_size=1,
            autocommit=True,
            prepare_threshold=0,
            application_name=self.application_name,
        )
        self.finishes = GroupCommit(self._finish_batch, key=_first)
        #: Statement texts planned for their parameters at every execution, never from a
        #: cached generic plan (see ``_claim_fifo``).
        self.planned_each_time: set[str] = set()

    def execute(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        outcome = self.prepared.run(conn, sql, params)
        if outcome is not None:
            return outcome
        if sql in self.planned_each_time:
            return conn.execute(sql, params, prepare=False)
        return conn.execute(sql, params)

    def open(self, timeout: float = 10.0) -> None:
        self.pool.open(timeout)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        joined = self.joined_connection()
        if joined is not None:  # the caller's open transaction (Django's atomic())
            yield joined
            return
        pool = self.lease_pool if self._lease.active else self.pool
        with pool.connection() as conn:
            yield conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        joined = self.joined_connection()
        if joined is not None:
            yield joined
            return
        with self.pool.connection() as conn, conn.transaction():
            yield conn

    # A lost connection or a restarting server pauses statements instead of failing them:
    # they are retried with backoff until ``outage_timeout`` seconds have passed (default:
    # for as long as it takes, so an outage pauses workflows instead of failing them).
    outage_timeout = float("inf")

    def _retrying(self, fn: Callable[..., _T], *args: Any) -> _T:
        delay, started = 0.1, time.monotonic()
        while True:
            try:
                return fn(*args)
            except PoolClosed:
                raise StoreClosed(
                    "the system database's connection pool is closed (the engine or client "
                    "was shut down)"
                ) from None
            except (self._psycopg.OperationalError, PoolTimeout) as exc:
                misconfigured = configuration_error(exc)
                if misconfigured is not None:
                    raise misconfigured from None
                now = time.monotonic()
                if now - started > self.outage_timeout or not self.retries_allowed():
                    raise DatabaseUnavailable(
                        f"system database unavailable: {redact(str(exc))}"
                    ) from None
                log.warning(
                    "system database unavailable (%s); retrying in %.1fs",
                    redact(str(exc)).strip(),
                    delay,
                )
                time.sleep(min(delay, max(self.give_up_at - now, 0.0)))
                delay = min(delay * 2, 5.0)

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._retrying(super().run, sql, params)

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._retrying(super().fetchone, sql, params)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._retrying(super().fetchall, sql, params)

    # Multi-statement operations (marked ``@whole`` in base.py) are retried whole: each runs
    # in one transaction, so a failure rolls all of it back. (A commit whose acknowledgement
    # was lost shows up on the retry as an already-recorded step, which the engine resolves by
    # replaying.)
    def retry_whole(self, operation: Callable[[], _T]) -> _T:
        return self._retrying(operation)

    def send_message(
        self,
        destination_id: str,
        topic: str,
        message: str,
        idempotency_key: str | None,
        step: StepCheckpoint | None = None,
    ) -> bool:
        if step is not None:  # a send inside a workflow: message and checkpoint in one transaction
            return super().send_message(destination_id, topic, message, idempotency_key, step)
        # From outside a workflow: one statement, one round trip.
        inserted = self.run(
            "INSERT INTO durable_notifications (destination_id, topic, message, idempotency_key, "
            "created_at) SELECT %s, %s, %s, %s, %s WHERE EXISTS (SELECT 1 FROM durable_workflows "
            "WHERE workflow_id = %s) ON CONFLICT DO NOTHING",
            (destination_id, topic, message, idempotency_key, self.now_ms(), destination_id),
        )
        if not inserted and self.get_outcome(destination_id) is None:
            return False
        self.after_commit("m", destination_id)
        return True

    # Take the oldest message and checkpoint it as the recv step in one statement: the UPDATE
    # and the INSERT happen only while this execution owns the workflow, and both or neither.
    # The workflow row is share-locked (ordering the consume against a takeover's claim, as a
    # step's checkpoint is) only when something is to be written: a message is waiting, or
    # the wait's mark is given, which is then inserted in the same statement when no message
    # is taken (ON CONFLICT: a retry whose first attempt had committed). A later look that
    # finds nothing (after a wake-up that was not for it, or a poll) writes nothing, and an
    # unlocked read answers "still owned?": no tuple lock, no wait behind an update of the row.
    _CONSUME = f"""
        WITH peek AS (
            SELECT EXISTS (
                SELECT 1 FROM durable_notifications
                WHERE destination_id = %s AND topic = %s AND consumed_at IS NULL
            ) AS waiting
        ), owner AS (
            SELECT 1 FROM durable_workflows
            WHERE {OWNED} AND ((SELECT waiting FROM peek) OR %s::text IS NOT NULL)
            FOR SHARE
        ), msg AS (
            UPDATE durable_notifications SET consumed_at = %s WHERE message_id = (
                SELECT message_id FROM durable_notifications
                WHERE destination_id = %s AND topic = %s AND consumed_at IS NULL
                ORDER BY message_id LIMIT 1 FOR UPDATE SKIP LOCKED
            ) AND EXISTS (SELECT 1 FROM owner)
            RETURNING message
        ), step AS (
            INSERT INTO durable_steps (workflow_id, step_id, name, output, error,
                child_workflow_id, started_at, finished_at)
            SELECT %s, %s, 'durable.recv', message, NULL, NULL, %s, %s FROM msg
            RETURNING output
        ), owned AS (
            SELECT CASE WHEN (SELECT waiting FROM peek) OR %s::text IS NOT NULL
                THEN EXISTS (SELECT 1 FROM owner)
                ELSE EXISTS (SELECT 1 FROM durable_workflows WHERE {OWNED}) END AS owned
        ), mark AS (
            INSERT INTO durable_steps (workflow_id, step_id, name, output, error,
                child_workflow_id, started_at, finished_at)
            SELECT %s, %s, %s::text, %s::text, NULL, NULL, %s, %s
            WHERE %s::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM msg)
                AND (SELECT owned FROM owned)
            ON CONFLICT DO NOTHING
        )
        SELECT (SELECT output FROM step), (SELECT owned FROM owned)
    """

    def consume_message(
        self,
        workflow_id: str,
        run_token: str,
        step_id: int,
        topic: str,
        started_at: int,
        mark: tuple[str, str] | None = None,
    ) -> tuple[bool, str | None]:
        t = self.now_ms()
        name, output = mark if mark is not None else (None, None)
        params = (
            *(workflow_id, topic),  # peek
            *(workflow_id, run_token, name),  # owner
            *(t, workflow_id, topic),  # msg
            *(workflow_id, step_id, started_at, t),  # step
            *(name, workflow_id, run_token),  # owned
            *(workflow_id, -step_id, name, output, t, t, name),  # mark
        )
        try:
            output, owned = self.fetchone(self._CONSUME, params)
        except self._psycopg.errors.UniqueViolation:
            raise OwnershipLost(workflow_id) from None
        if not owned:
            raise OwnershipLost(workflow_id)
        return (True, output) if output is not None else (False, None)

    # The outcome and the last step's checkpoint in one statement (one round trip, one
    # commit): the step is inserted only for the row the UPDATE changed, i.e. only while this
    # execution owned the workflow, and the UPDATE's row lock orders it after any claim.
    _FINISH_WITH_STEP = (
        f"WITH finished AS ({SQLStore._FINISH} RETURNING workflow_id) "
        f"{SQLStore._INSERT_STEP}SELECT workflow_id, %s, %s, %s, %s, %s, %s, %s, %s FROM finished"
    )

    def _finish_with_step(self, finish: tuple[Any, ...], step: FinalStep) -> int:
        return self.run(self._FINISH_WITH_STEP, (*finish, *step))

    # A batch as one array per column, unnested by the server: the statement's text is short
    # and the same for every batch, where a multi-row VALUES list of thousands of placeholders
    # was re-parsed by the driver for each batch (most of enqueue_many's client CPU: 57-67 us
    # per row, now 9-11, measured on 10 batches of 1000). Same rows, same ON CONFLICT.
    batch_rows = 5000
    _INSERT_UNNEST = (
        f"INSERT INTO durable_workflows ({WORKFLOW_COLUMNS}) SELECT * FROM unnest("
        + ", ".join(f"%s::{_COLUMN_TYPES.get(c, 'text')}[]" for c in _WORKFLOW_FIELDS)
        + ") ON CONFLICT DO NOTHING RETURNING workflow_id"
    )

    def _insert_rows(self, conn: Any, part: Sequence[WorkflowRow]) -> list[str]:
        columns = [list(column) for column in zip(*(row.values() for row in part), strict=True)]
        return [r[0] for r in self.execute(conn, self._INSERT_UNNEST, columns).fetchall()]

    # Several finishes in one statement (group commit, ``finishes``): the outcomes arrive as
    # arrays, one element per workflow (one statement text for any batch size, prepared
    # once), and each row is updated, and its last step inserted, only if this execution
    # still owns it, as in ``_FINISH_WITH_STEP``. Returns the workflows it finished.
    _FINISH_MANY = (
        "WITH input AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], "
        "%s::text[], %s::int[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[], "
        "%s::bigint[], %s::int[]) AS i(workflow_id, run_token, status, output, error, step_id, "
        "name, step_output, step_error, child_workflow_id, started_at, step_finished_at, "
        "attempts)), "
        "finished AS (UPDATE durable_workflows w SET status = i.status, output = i.output, "
        "error = i.error, updated_at = %s, finished_at = %s FROM input i "
        "WHERE w.workflow_id = i.workflow_id AND w.run_token = i.run_token "
        "AND w.status || '' = 'PENDING' RETURNING w.workflow_id), "
        f"steps AS ({SQLStore._INSERT_STEP}SELECT i.workflow_id, i.step_id, i.name, "
        "i.step_output, i.step_error, i.child_workflow_id, i.started_at, i.step_finished_at, "
        "i.attempts FROM input i JOIN finished f ON f.workflow_id = i.workflow_id "
        "WHERE i.step_id IS NOT NULL) "
        "SELECT workflow_id FROM finished"
    )

    def _finish_batch(self, finishes: Sequence[Finish]) -> list[bool]:
        """Write a batch of finishes (distinct workflows) in one statement; whether each
        was this execution's to finish. A batch whose step INSERT hits a recorded step
        (one of them no longer owns its workflow) wrote nothing: each is then written alone,
        so that only that one is refused."""
        if len(finishes) == 1:
            return [self._finish_one(finishes[0])]
        # In workflow_id order: concurrent multi-row writers lock rows in one order.
        ordered = sorted(finishes, key=_first)
        no_step = (None,) * 8
        columns: list[list[Any]] = [[] for _ in range(13)]
        for workflow_id, run_token, status, output, error, step in ordered:
            for column, value in zip(
                columns,
                (workflow_id, run_token, status, output, error, *(step or no_step)),
                strict=True,
            ):
                column.append(value)
        t = self.now_ms()
        try:
            rows = self.fetchall(self._FINISH_MANY, (*columns, t, t))
        except self._psycopg.errors.UniqueViolation:
            return [self._finish_one(finish) for finish in finishes]
        done = {r[0] for r in rows}
        return [finish[0] in done for finish in finishes]

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, self._psycopg.errors.UniqueViolation)

    def close(self) -> None:
        self.pool.close()
        self.lease_pool.close()

    @contextlib.contextmanager
    def migration_lock(self) -> Iterator[Any]:
        with self.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            yield conn

    def schema_version(self) -> int | None:
        row = self.fetchone("SELECT to_regclass('durable_schema')")
        if not row or row[0] is None:
            return None
        version: int | None = self.fetchone("SELECT MAX(version) FROM durable_schema")[0]
        return version

    def claim_from_queue(
        self, claim: QueueClaim, executor_id: str, token_prefix: str
    ) -> list[WorkflowRow]:
        """Claim a batch, retried through an outage. Idempotent: ``token_prefix`` is this
        claim's own token (every run token it writes starts with it), so a retry whose first
        attempt committed but lost its reply finds that attempt's rows instead of stranding
        them PENDING here."""
        attempts = 0

        def attempt() -> list[WorkflowRow]:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                done = self.pending_of_executor(executor_id, claim.versions, token_prefix)
                if done:
                    return done
            if (
                claim.concurrency is None
                and claim.rate_limit is None
                and not claim.priority_enabled
                and not claim.partitioned
            ):
                fast = self._claim_fifo(claim, executor_id, token_prefix, self.now_ms())
                if fast is not None:
                    return fast
                # Stored settings (a pause, a limit): the transaction below applies them.
            return super(PostgresStore, self).claim_from_queue(claim, executor_id, token_prefix)

        return self._retrying(attempt)

    def _serialize_claimers(self, conn: Any, claim: QueueClaim) -> None:
        if (
            claim.concurrency is not None
            or claim.rate_limit is not None
            or claim.partition_concurrency is not None
            or claim.partition_rate_limit is not None
        ):
            # A global budget is shared state: serialize the claimers of this queue for the
            # length of this short transaction so counts and claims agree.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (claim.name,))

    def _claim_fifo(
        self, claim: QueueClaim, executor_id: str, token_prefix: str, t: int
    ) -> list[WorkflowRow] | None:
        """A FIFO queue without global limits, claimed in one autocommit statement instead of
        a transaction of four (settings, due delayed rows, ready rows, the UPDATE): the same
        candidates from the same indexes, in the same order, locked ``SKIP LOCKED``. The
        statement claims nothing when the queue's stored settings pause or limit it, and says
        so (None: the caller then takes the transactional path, which applies them)."""
        filters, selectors = claim.filters()
        room = claim.limit
        if room <= 0:
            return []
        sql = (
            "WITH settings AS (SELECT 1 FROM durable_queue_settings WHERE queue_name = %s "
            "AND (paused <> 0 OR concurrency IS NOT NULL OR worker_concurrency IS NOT NULL "
            "OR rate_limit_count IS NOT NULL)), "
            "due AS (SELECT workflow_id, not_before AS rank FROM durable_workflows "
            "WHERE queue_name = %s AND status = 'ENQUEUED' AND not_before IS NOT NULL "
            f"AND not_before <= %s {filters}AND NOT EXISTS (SELECT 1 FROM settings) "
            "ORDER BY not_before LIMIT %s FOR UPDATE SKIP LOCKED), "
            "ready AS (SELECT workflow_id, created_at AS rank FROM durable_workflows "
            "WHERE queue_name = %s AND status = 'ENQUEUED' AND not_before IS NULL "
            f"{filters}AND NOT EXISTS (SELECT 1 FROM settings) "
            "ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED), "
            "picked AS (SELECT workflow_id, 0 AS part, rank FROM due UNION ALL "
            "SELECT workflow_id, 1 AS part, rank FROM ready ORDER BY part, rank LIMIT %s), "
            f"claimed AS (UPDATE durable_workflows w SET {CLAIM_SET.replace('%s || workflow_id', '%s || w.workflow_id')} "
            "FROM picked WHERE w.workflow_id = picked.workflow_id AND w.status || '' = 'ENQUEUED' "
            f"RETURNING {_W_COLUMNS}{self.claimed_has_steps.replace('durable_workflows.', 'w.')}, "
            "picked.part, picked.rank) "
            # One marker row when the stored settings held the claim back.
            f"SELECT *, FALSE FROM claimed UNION ALL SELECT {_NULLS}, TRUE FROM settings"
        )
        # Planned afresh each time: the generic plan PostgreSQL caches after five executions
        # drained a 20k backlog at 518-688 wf/s against 1,178-1,247 with plans made for the
        # claim's values (benchmarks.drain; the same plan shapes, slower under the drain).
        self.planned_each_time.add(sql)
        # Not retried here: a lost reply must reach claim_from_queue's retry, which first
        # looks for the rows that attempt committed under this claim's token.
        rows = super().fetchall(
            sql,
            (
                claim.name,
                claim.name, t, *selectors, room,
                claim.name, *selectors, room,
                room,
                executor_id, token_prefix, t, t, t, t,
            ),
        )  # fmt: skip
        if any(r[-1] for r in rows):
            return None
        rows.sort(key=lambda r: (r[-3], r[-2]))
        width = len(_WORKFLOW_FIELDS)
        claimed = []
        for r in rows:
            row = WorkflowRow.from_tuple(r[:width])
            row.has_steps = bool(r[width])
            claimed.append(row)
        return claimed
