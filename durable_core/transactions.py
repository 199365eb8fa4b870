"""Adapters that run ``@transaction`` steps on the application's database.

The step's own writes and a row in ``durable_transaction_outputs`` commit in one transaction,
so after a crash the step is found done (and its output read back) instead of run again.
Integrations supply their own adapter with the same two methods (Django: ``atomic()``).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from typing import TYPE_CHECKING, Any

from . import context as ctxmod
from .errors import NotInWorkflow, SerializationError
from .serialization import decode_error, encode_error
from .store import now_ms
from .store.app_schema import ensure_app_schema

if TYPE_CHECKING:
    from .context import WorkflowContext
    from .registry import StepDef

log = logging.getLogger("durable_core.transactions")

_session: contextvars.ContextVar[Any] = contextvars.ContextVar("durable_sql_session", default=None)

SELECT_OUTPUT = (
    "SELECT output, error FROM durable_transaction_outputs WHERE workflow_id = :w AND step_id = :s"
)
INSERT_OUTPUT = (
    "INSERT INTO durable_transaction_outputs (workflow_id, step_id, output, error, created_at) "
    "VALUES (:w, :s, :o, NULL, :t)"
)


def sql_session() -> Any:
    """The SQLAlchemy session of the running ``@transaction`` step."""
    session = _session.get()
    if session is None:
        raise NotInWorkflow("sql_session() (inside a @transaction step)")
    return session


class _Rollback(Exception):
    def __init__(self, error: BaseException):
        self.error = error


class _OutageRetry:
    """The pause-and-retry policy that ``run`` and ``run_async`` share: an outcome is returned
    unless the database itself failed, in which case the step is tried again after a pause
    that doubles up to 5 s."""

    def __init__(self, ctx: WorkflowContext, defn: StepDef) -> None:
        self.ctx, self.defn, self.delay = ctx, defn, 0.1
        self.failure: BaseException | None = None

    def settle(
        self, value: Any, error: BaseException | None, raised: Exception | None
    ) -> tuple[Any, BaseException | None] | None:
        """The step's outcome, or None to retry; re-raises what is not a database failure."""
        if raised is not None:
            if not _connection_failed(raised, in_step_code=False):
                raise raised
            self.failure = raised
            return None
        if error is None or not _connection_failed(error, in_step_code=True):
            return value, error
        self.failure = error
        return None

    def pause(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, 5.0)
        log.warning(
            "@transaction %s of workflow %s: database unavailable (%s); retrying in %.1fs",
            self.defn.name,
            self.ctx.workflow_id,
            type(self.failure).__name__,
            delay,
        )
        return delay


def _connection_failed(exc: BaseException, in_step_code: bool) -> bool:
    """The database was unreachable, locked or the connection died: the transaction did not
    commit (or, if its commit's answer was lost, its recorded output says so), so run it again.
    An error raised through the step's own code is retried only for a lost connection or a
    locked SQLite database: anything else there is the step's error."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    return not in_step_code or "database is locked" in str(exc)


class SQLAlchemyTransactions:
    """Runs ``@transaction`` steps in a SQLAlchemy session (sync Engine or AsyncEngine)."""

    def __init__(self, engine_or_url: Any, serializer: Any, *, migrate: bool = False):
        from sqlalchemy import create_engine

        if isinstance(engine_or_url, str):
            url = engine_or_url
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            engine_or_url = create_engine(url, pool_pre_ping=True)
        self.engine = engine_or_url
        # Checked by name so that sync users need not install greenlet for sqlalchemy.ext.asyncio.
        self.is_async = any(c.__name__ == "AsyncEngine" for c in type(engine_or_url).__mro__)
        self.serializer = serializer
        # Checked once (reads only); created or upgraded here only when ``migrate`` allows.
        self.migrate = migrate
        self._table_ready = False
        self._lock = threading.Lock()

    def _ensure_table(self) -> None:
        if self._table_ready:
            return
        with self._lock:
            if not self._table_ready:
                with self.engine.begin() as conn:
                    ensure_app_schema(conn, self.migrate)
                self._table_ready = True

    async def _ensure_table_async(self) -> None:
        if self._table_ready:
            return
        async with self.engine.begin() as conn:
            await conn.run_sync(ensure_app_schema, self.migrate)
        self._table_ready = True

    def _recorded(self, ctx: WorkflowContext, row: Any) -> tuple[Any, BaseException | None]:
        if row[1] is not None:
            return None, decode_error(self.serializer, row[1], ctx.workflow_id)
        return (None if row[0] is None else self.serializer.loads(row[0])), None

    def _encode(self, value: Any) -> str:
        try:
            return self.serializer.dumps(value)
        except SerializationError as exc:
            raise _Rollback(
                SerializationError(f"the result of the transaction cannot be serialized: {exc}")
            ) from None

    def run(
        self, ctx: WorkflowContext, step_id: int, defn: StepDef, args: tuple, kwargs: dict
    ) -> tuple[Any, BaseException | None]:
        """Run the step in one transaction; a database outage pauses it instead of failing it."""
        retry = _OutageRetry(ctx, defn)
        while True:
            try:
                outcome = retry.settle(*self._run_once(ctx, step_id, defn, args, kwargs), None)
            except Exception as exc:
                outcome = retry.settle(None, None, exc)
            if outcome is not None:
                return outcome
            if ctx.cancel_event.wait(retry.pause()):
                from .context import Aborted

                raise Aborted(ctx.workflow_id) from None

    def _run_once(
        self, ctx: WorkflowContext, step_id: int, defn: StepDef, args: tuple, kwargs: dict
    ) -> tuple[Any, BaseException | None]:
        if self.is_async:
            raise TypeError(
                f"@transaction {defn.name!r} is sync but the application database is an AsyncEngine; "
                "make the step `async def`."
            )
        from sqlalchemy import text
        from sqlalchemy.exc import IntegrityError
        from sqlalchemy.orm import Session

        self._ensure_table()
        params = {"w": ctx.workflow_id, "s": step_id}
        try:
            with Session(self.engine) as session, session.begin():
                options = {"isolation_level": defn.isolation} if defn.isolation else {}
                conn = session.connection(execution_options=options)
                row = conn.execute(text(SELECT_OUTPUT), params).first()
                if row is not None:
                    return self._recorded(ctx, row)
                session_token = _session.set(session)
                step_token = ctxmod.mark_in_step()
                try:
                    value = defn.fn(*args, **kwargs)
                except Exception as exc:
                    raise _Rollback(exc) from exc
                finally:
                    ctxmod.unmark_in_step(step_token)
                    _session.reset(session_token)
                session.flush()
                conn.execute(
                    text(INSERT_OUTPUT), {**params, "o": self._encode(value), "t": now_ms()}
                )
            return value, None
        except _Rollback as rollback:
            return None, rollback.error
        except IntegrityError:
            # Another execution of this step (the workflow was recovered while this one still
            # ran) committed first: its outcome is the step's, and ours rolled back.
            with self.engine.connect() as conn:
                row = conn.execute(text(SELECT_OUTPUT), params).first()
            if row is None:
                raise
            return self._recorded(ctx, row)

    async def run_async(
        self, ctx: WorkflowContext, step_id: int, defn: StepDef, args: tuple, kwargs: dict
    ) -> tuple[Any, BaseException | None]:
        """The async twin of :meth:`run`, with the same pause-and-retry on an outage."""
        retry = _OutageRetry(ctx, defn)
        while True:
            try:
                run = await self._run_once_async(ctx, step_id, defn, args, kwargs)
                outcome = retry.settle(*run, None)
            except Exception as exc:
                outcome = retry.settle(None, None, exc)
            if outcome is not None:
                return outcome
            await asyncio.sleep(retry.pause())
            ctx.check_live()

    async def _run_once_async(
        self, ctx: WorkflowContext, step_id: int, defn: StepDef, args: tuple, kwargs: dict
    ) -> tuple[Any, BaseException | None]:
        if not self.is_async:
            if not defn.is_async:
                return await asyncio.to_thread(self.run, ctx, step_id, defn, args, kwargs)
            raise TypeError(
                f"async @transaction {defn.name!r} needs an AsyncEngine as the application database"
            )
        from sqlalchemy import text
        from sqlalchemy.exc import IntegrityError
        from sqlalchemy.ext.asyncio import AsyncSession

        await self._ensure_table_async()
        params = {"w": ctx.workflow_id, "s": step_id}
        try:
            async with AsyncSession(self.engine) as session, session.begin():
                options = {"isolation_level": defn.isolation} if defn.isolation else {}
                conn = await session.connection(execution_options=options)
                row = (await conn.execute(text(SELECT_OUTPUT), params)).first()
                if row is not None:
                    return self._recorded(ctx, row)
                session_token = _session.set(session)
                step_token = ctxmod.mark_in_step()
                try:
                    value = await defn.fn(*args, **kwargs)
                except Exception as exc:
                    raise _Rollback(exc) from exc
                finally:
                    ctxmod.unmark_in_step(step_token)
                    _session.reset(session_token)
                await session.flush()
                await conn.execute(
                    text(INSERT_OUTPUT), {**params, "o": self._encode(value), "t": now_ms()}
                )
            return value, None
        except _Rollback as rollback:
            return None, rollback.error
        except IntegrityError:
            async with self.engine.connect() as conn:
                row = (await conn.execute(text(SELECT_OUTPUT), params)).first()
            if row is None:
                raise
            return self._recorded(ctx, row)


def encode_transaction_error(serializer: Any, exc: BaseException) -> str:
    return encode_error(serializer, exc)
