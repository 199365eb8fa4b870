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
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, close_old_connections, connections
from django.db import transaction as db_transaction

from durable_core import integration as ctxmod
from durable_core.errors import ConfigurationError, SerializationError
from durable_core.integration import decode_error, now_ms

if TYPE_CHECKING:
    from durable_core.integration import StepDef, WorkflowContext

SELECT_OUTPUT = (
    "SELECT output, error FROM durable_transaction_outputs WHERE workflow_id = %s AND step_id = %s"
)
INSERT_OUTPUT = (
    "INSERT INTO durable_transaction_outputs (workflow_id, step_id, output, error, created_at) "
    "VALUES (%s, %s, %s, NULL, %s)"
)
ISOLATION_LEVELS = {"READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"}


class _Rollback(Exception):
    def __init__(self, error: BaseException):
        self.error = error


class DjangoTransactions:
    """Runs ``@transaction`` steps in ``transaction.atomic(using=alias)``."""

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias

    # -- @transaction steps ------------------------------------------------------------------

    def run(
        self, ctx: WorkflowContext, step_id: int, defn: StepDef, args: tuple, kwargs: dict
    ) -> tuple[Any, BaseException | None]:
        serializer = ctx.engine.serializer
        # A worker thread is like a request: drop a broken or expired connection before and
        # after. Never inside an outer atomic block (that would close the caller's transaction).
        hygiene = not connections[self.alias].in_atomic_block
        if hygiene:
            close_old_connections()
        try:
            with db_transaction.atomic(using=self.alias):
                with connections[self.alias].cursor() as cursor:
                    self._set_isolation(cursor, defn)
                    cursor.execute(SELECT_OUTPUT, [ctx.workflow_id, step_id])
                    row = cursor.fetchone()
                if row is not None:
                    if row[1] is not None:
                        return None, decode_error(serializer, row[1], ctx.workflow_id)
                    return (None if row[0] is None else serializer.loads(row[0])), None
                token = ctxmod.mark_in_step()
                try:
                    value = defn.fn(*args, **kwargs)
                except Exception as exc:
                    raise _Rollback(exc) from exc
                finally:
                    ctxmod.unmark_in_step(token)
                try:
                    output = serializer.dumps(value)
                except SerializationError as exc:
                    raise _Rollback(
                        SerializationError(
                            f"the result of {defn.name!r} cannot be serialized: {exc}"
                        )
                    ) from None
                with connections[self.alias].cursor() as cursor:
                    cursor.execute(INSERT_OUTPUT, [ctx.workflow_id, step_id, output, now_ms()])
            return value, None
        except _Rollback as rollback:
            return None, rollback.error
        finally:
            if hygiene:
                close_old_connections()

    def step_boundary(self) -> None:
        """Called by the engine before and after each plain step body: like Django does around
        a request, drop connections that are past CONN_MAX_AGE or broken, so a long-running
        worker never hands a step a dead connection. Never inside an atomic block."""
        if not connections[self.alias].in_atomic_block:
            close_old_connections()

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

    async def run_async(
        self, ctx: WorkflowContext, step_id: int, defn: StepDef, args: tuple, kwargs: dict
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


class _Result:
    def __init__(self, rowcount: int, rows: list) -> None:
        self.rowcount = rowcount
        self._rows = rows

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list:
        return list(self._rows)


class EnlistedConnection:
    """The slice of a DB-API connection that the store uses (``execute`` returning a result
    with ``rowcount``/``fetchone``), over Django's connection inside the open transaction.

    Each statement runs in a savepoint so that a failed insert (a deduplication conflict)
    leaves the application's transaction usable, and Django's wrapped ``IntegrityError`` is
    unwrapped so the store recognizes the driver's unique violation.
    """

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def execute(self, sql: str, params: Any = ()) -> _Result:
        try:
            with db_transaction.atomic(using=self.alias):
                with connections[self.alias].cursor() as cursor:
                    cursor.execute(sql, list(params) if params else None)
                    rows = cursor.fetchall() if cursor.description else []
                    return _Result(cursor.rowcount, rows)
        except IntegrityError as exc:
            if exc.__cause__ is not None:
                raise exc.__cause__ from None
            raise
