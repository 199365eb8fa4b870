"""The Django adapter for ``@transaction`` steps and for transactional enqueue.

``@transaction`` steps run in ``transaction.atomic(using=alias)`` and write their row in
``durable_transaction_outputs`` inside that same transaction, so the step's ORM writes and its
checkpoint commit (or roll back) together: after a crash the step is found done, never redone.

``enlist``: a workflow started (or enqueued) while the calling thread is inside ``atomic()`` on
the durable alias is inserted through Django's own connection, so the workflow row is part of
the application's transaction. Compared with ``transaction.on_commit(lambda: start_workflow(...))``:
with ``on_commit`` a crash between the commit and the callback loses the workflow although the
order was committed, and the start cannot fail the transaction (a serialization error would be
raised after the commit). Here the workflow row commits atomically with the application's
rows: a rollback means the workflow never existed, a commit means it will run (and be
recovered after a crash). Only *running* it waits for ``on_commit``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import IntegrityError, close_old_connections, connections
from django.db import transaction as db_transaction
from django.db.utils import DatabaseError, InterfaceError, OperationalError

from durable_core.errors import ConfigurationError
from durable_core.integration import (
    CONFLICT,
    INSERT_OUTPUT,
    OUTAGE,
    SELECT_OUTPUT,
    SELECT_OUTPUT_WITH_TIMEOUTS,
    TransactionTimeouts,
    now_ms,
    retryable_sqlstate,
    run_transaction,
)

if TYPE_CHECKING:
    from durable_core.integration import StepDef, WorkflowContext

ISOLATION_LEVELS = {"READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"}
T = TypeVar("T")


class DjangoTransactions:
    """Runs ``@transaction`` steps in ``transaction.atomic(using=alias)``: the core's
    algorithm (``durable_core.transactions.run_transaction``: output row, outage retry,
    another execution committed first) over Django's connection (:class:`_DjangoDriver`)."""

    def __init__(
        self, alias: str = "default", timeouts: TransactionTimeouts | dict[str, Any] | None = None
    ) -> None:
        self.alias = alias
        self.timeouts = TransactionTimeouts.of(timeouts)

    # -- @transaction steps ------------------------------------------------------------------

    def run(
        self,
        ctx: WorkflowContext,
        step_id: int,
        defn: StepDef,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[Any, BaseException | None]:
        # A worker thread is like a request: drop a broken or expired connection before and
        # after. Never inside an outer atomic block (that would close the caller's transaction).
        alias = defn.using or self.alias  # @transaction(using=...): another DATABASES alias
        if alias not in connections.settings:
            return None, ConfigurationError(
                f"@transaction {defn.name!r}: using={alias!r} is not a DATABASES alias "
                f"(aliases: {', '.join(connections.settings)})"
            )
        hygiene = not connections[alias].in_atomic_block
        if hygiene:
            close_old_connections()
        try:
            driver = _DjangoDriver(alias, self.timeouts, nested=not hygiene)
            return run_transaction(driver, ctx.engine.serializer, ctx, step_id, defn, args, kwargs)
        finally:
            if hygiene:
                close_old_connections()

    def step_boundary(self) -> None:
        """Called by the engine before and after each plain step body: like Django does around
        a request, drop connections that are past CONN_MAX_AGE or broken, so a long-running
        worker never hands a step a dead connection. Never inside an atomic block."""
        if not connections[self.alias].in_atomic_block:
            close_old_connections()

    async def run_async(
        self,
        ctx: WorkflowContext,
        step_id: int,
        defn: StepDef,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[Any, BaseException | None]:
        if defn.is_async:
            raise TypeError(
                f"@transaction {defn.name!r} is `async def`, but Django's transaction.atomic() "
                "is synchronous; write the step as a plain `def` (async workflows may call it)."
            )
        return await asyncio.to_thread(self.run, ctx, step_id, defn, args, kwargs)

    # -- transactional enqueue ---------------------------------------------------------------

    def enlist(self, engine: Any) -> tuple[Any, Any]:
        """Join the caller's open ``atomic()`` block on the durable alias, if there is one."""
        connection = connections[self.alias]
        if not connection.in_atomic_block:
            return None, None

        def on_commit(callback: Any) -> None:
            db_transaction.on_commit(callback, using=self.alias)

        return EnlistedConnection(self.alias), on_commit

    def callers_transaction(self, engine: Any) -> tuple[Any, Any]:
        """Lookups, sends and cancels inside ``atomic()`` on the durable alias join it too:
        they see a workflow started there, and commit or roll back with it."""
        return self.enlist(engine)

    async def in_callers_thread(self, fn: Callable[[], T]) -> T:
        """Django's transactions belong to a thread: from a coroutine run by
        ``async_to_sync()`` (a sync view, a ``TestCase``'s async test) inside ``atomic()``,
        the block is open in the thread that called it, where asgiref's thread-sensitive
        mode runs ``fn`` (that thread waits for the coroutine meanwhile)."""
        return await sync_to_async(fn, thread_sensitive=True)()


class _Result:
    def __init__(self, rowcount: int, rows: list[Any]) -> None:
        self.rowcount = rowcount
        self._rows = rows

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return list(self._rows)


class EnlistedConnection:
    """The slice of a DB-API connection that the store uses (``execute`` returning a result
    with ``rowcount``/``fetchone``), over Django's connection inside the open transaction.

    Each write runs in a savepoint so that a failed insert (a deduplication conflict) leaves
    the application's transaction usable, and Django's wrapped ``IntegrityError`` is unwrapped
    so the store recognizes the driver's unique violation. Reads (the engine's lookups of a
    workflow started in this transaction) need no savepoint.
    """

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def execute(self, sql: str, params: Any = ()) -> _Result:
        if connections[self.alias].vendor == "sqlite":
            # The SQLite store hands over qmark SQL; Django's cursors take the format style
            # (its DEBUG cursor logs `sql % params`, which fails on `?`).
            sql = sql.replace("%", "%%").replace("?", "%s")
        if sql.lstrip()[:6].upper() == "SELECT":
            return self._run(sql, params)
        try:
            with db_transaction.atomic(using=self.alias):
                return self._run(sql, params)
        except IntegrityError as exc:
            if exc.__cause__ is not None:
                raise exc.__cause__ from None
            raise

    def _run(self, sql: str, params: Any) -> _Result:
        with connections[self.alias].cursor() as cursor:
            cursor.execute(sql, list(params) if params else None)
            rows = cursor.fetchall() if cursor.description else []
            return _Result(cursor.rowcount, rows)


class _DjangoDriver:
    """``durable_core.transactions.TransactionDriver`` over Django's connection: the step's
    transaction is ``atomic(using=alias)`` (a savepoint inside a caller's own atomic block)."""

    def __init__(self, alias: str, timeouts: TransactionTimeouts, *, nested: bool) -> None:
        self.alias = alias
        self.timeouts = timeouts
        self.nested = nested

    @contextlib.contextmanager
    def transaction(self, defn: StepDef) -> Iterator[None]:
        with db_transaction.atomic(using=self.alias):
            with connections[self.alias].cursor() as cursor:
                self._set_isolation(cursor, defn)
            yield None

    def recorded(self, tx: Any, workflow_id: str, step_id: int) -> tuple[Any, ...] | None:
        with connections[self.alias].cursor() as cursor:
            if connections[self.alias].vendor == "postgresql":
                lock, idle = self.timeouts.settings()
                cursor.execute(SELECT_OUTPUT_WITH_TIMEOUTS, [lock, idle, workflow_id, step_id])
                row = cursor.fetchone()
                return None if row is None or row[2] is None else (row[0], row[1])
            cursor.execute(SELECT_OUTPUT, [workflow_id, step_id])
            row = cursor.fetchone()
            return None if row is None else (row[0], row[1])

    def record(self, tx: Any, workflow_id: str, step_id: int, output: str) -> None:
        with connections[self.alias].cursor() as cursor:
            cursor.execute(INSERT_OUTPUT, [workflow_id, step_id, output, now_ms()])

    def recorded_outside(self, workflow_id: str, step_id: int) -> tuple[Any, ...] | None:
        with connections[self.alias].cursor() as cursor:
            cursor.execute(SELECT_OUTPUT, [workflow_id, step_id])
            row = cursor.fetchone()
            return None if row is None else (row[0], row[1])

    def in_step(self, tx: Any) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # the body uses the ORM on the same connection

    def failure(self, exc: BaseException, in_step_code: bool) -> str | None:
        if isinstance(exc, IntegrityError):
            return None if in_step_code else CONFLICT
        if retryable_sqlstate(exc):
            return OUTAGE
        if not isinstance(exc, OperationalError | InterfaceError):
            return None
        if not in_step_code or "database is locked" in str(exc):
            return OUTAGE
        return OUTAGE if self._connection_broken() else None

    def _connection_broken(self) -> bool:
        raw = connections[self.alias].connection
        return raw is None or bool(getattr(raw, "closed", False) or getattr(raw, "broken", False))

    def can_retry(self) -> bool:
        # Inside the caller's own atomic block an outage has broken the caller's transaction:
        # retrying only this step's savepoint cannot mend it.
        return not self.nested

    def after_failure(self) -> None:
        with contextlib.suppress(DatabaseError):
            connections[self.alias].close()  # reconnect on the next attempt

    def _set_isolation(self, cursor: Any, defn: StepDef) -> None:
        level = (defn.isolation or "").upper().replace("_", " ")
        if not level:
            return
        if level not in ISOLATION_LEVELS:
            raise ConfigurationError(
                f"@transaction {defn.name!r}: isolation must be one of "
                f"{', '.join(sorted(ISOLATION_LEVELS))}, not {defn.isolation!r}"
            )
        if connections[self.alias].vendor == "postgresql":
            cursor.execute(f"SET TRANSACTION ISOLATION LEVEL {level}")
        # SQLite transactions are serializable already.
