"""``@transaction`` steps: one algorithm, a driver per database API.

The step's own writes and a row in ``durable_transaction_outputs`` commit in one transaction,
so after a crash the step is found done (and its output read back) instead of run again. What
the engine asks of whoever runs these steps is :class:`TransactionAdapter`. The algorithm
(:func:`run_transaction`: read the output row, run the body, write the row, and decide what a
failure means) is written here once; a :class:`TransactionDriver` supplies only the database
API under it: a SQLAlchemy session here, Django's ``atomic()`` in ``django_durable``.

A failure is one of three things:

* an outage (connection lost or refused, a pool timeout, a lock or idle timeout, SQLite
  ``database is locked``): the transaction did not commit, or if its COMMIT's reply was lost
  the output row says so; the step pauses and runs again when the database answers;
* another execution of the same step committed first (the workflow was adopted while this one
  was frozen): its recorded outcome is the step's, whatever error ours then met: the app's
  own unique key refusing our duplicate INSERT is exactly-once success, not an error;
* anything else raised by the body: the step's error, rolled back.

Stale transactions time out (:class:`TransactionTimeouts`): a frozen or partitioned worker
inside a body cannot hold its row locks for ever, and a step waiting on a lock gives up and
tries again instead of blocking for the length of someone else's freeze.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from . import context as ctxmod
from .context import Aborted
from .errors import ConfigurationError, NotInWorkflow, SerializationError
from .execution import as_failure, unwinds
from .serialization import Serializer, decode_error, encode_error
from .store import now_ms
from .store.app_schema import ensure_app_schema

if TYPE_CHECKING:
    from .context import WorkflowContext
    from .registry import StepDef

log = logging.getLogger("durable_core.transactions")

_session: contextvars.ContextVar[Any] = contextvars.ContextVar("durable_sql_session", default=None)

SELECT_OUTPUT = (
    "SELECT output, error FROM durable_transaction_outputs WHERE workflow_id = %s AND step_id = %s"
)
# PostgreSQL: the same lookup, setting the transaction's timeouts in the same round trip.
SELECT_OUTPUT_WITH_TIMEOUTS = (
    "SELECT o.output, o.error, o.step_id FROM (SELECT set_config('lock_timeout', %s, true), "
    "set_config('idle_in_transaction_session_timeout', %s, true)) AS timeouts "
    "LEFT JOIN durable_transaction_outputs o ON o.workflow_id = %s AND o.step_id = %s"
)
INSERT_OUTPUT = (
    "INSERT INTO durable_transaction_outputs (workflow_id, step_id, output, error, created_at) "
    "VALUES (%s, %s, %s, NULL, %s)"
)

# SQLSTATEs after which the transaction is known not to have committed and trying again is
# right: connection exceptions, the server shutting down or killing the session, an idle
# transaction timed out, a lock wait timed out.
_RETRY_SQLSTATES = ("08", "57P01", "57P02", "57P03", "25P03", "55P03")

OUTAGE = "outage"  # the database failed, not the step: pause and run the step again
CONFLICT = "conflict"  # a unique key refused a write: maybe another execution committed first


def sql_session() -> Any:
    """The SQLAlchemy session of the running ``@transaction`` step."""
    session = _session.get()
    if session is None:
        raise NotInWorkflow("sql_session() (inside a @transaction step)")
    return session


@dataclass(frozen=True, slots=True)
class TransactionTimeouts:
    """Time limits of a ``@transaction`` step's transaction on PostgreSQL, in seconds (None:
    no limit). Set per engine (``Engine(transaction_timeouts=...)``; Django:
    ``DURABLE["TRANSACTION_TIMEOUTS"] = {"lock": 10, "idle": 60}``).

    ``lock``: the longest a statement waits for a row lock (``lock_timeout``); past it the
    step rolls back and is tried again, so an adopter never blocks for the length of a frozen
    worker's freeze. ``idle``: the longest the transaction may sit idle between statements
    (``idle_in_transaction_session_timeout``); past it the server ends the session and its
    locks are released, so a frozen or partitioned worker cannot hold them for ever (its step
    is retried when it wakes, and finds the adopter's output if the adopter committed).
    A body that does slow non-database work inside its transaction needs a larger ``idle``.
    """

    lock: float | None = 10.0
    idle: float | None = 60.0

    def __post_init__(self) -> None:
        for name in ("lock", "idle"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigurationError(f"transaction timeout {name!r} must be seconds or None")
            if math.isnan(value) or value <= 0 or value > 86_400:
                raise ConfigurationError(
                    f"transaction timeout {name!r} must be between 0 and 86400 seconds, "
                    f"not {value!r}"
                )

    @classmethod
    def of(cls, value: Any) -> TransactionTimeouts:
        """From None (the defaults), an instance, or a mapping with ``lock``/``idle``."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {"lock", "idle"}
            if unknown:
                raise ConfigurationError(
                    f"transaction timeouts take 'lock' and 'idle', not {sorted(unknown)}"
                )
            return cls(**value)
        raise ConfigurationError(
            f"transaction_timeouts must be a TransactionTimeouts or a dict, not {value!r}"
        )

    def settings(self) -> tuple[str, str]:
        """``lock_timeout`` and ``idle_in_transaction_session_timeout`` values ('0': none)."""

        def ms(value: float | None) -> str:
            return "0" if value is None else str(max(int(value * 1000), 1))

        return ms(self.lock), ms(self.idle)


class TransactionAdapter(Protocol):
    """What an engine asks of whoever runs its ``@transaction`` steps (``engine.transactions``).
    ``Engine(transactions=...)`` takes any object with these methods."""

    def run(
        self,
        ctx: WorkflowContext,
        step_id: int,
        defn: StepDef,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[Any, BaseException | None]:
        """Run the step once, exactly: its outcome as ``(value, error)``."""
        ...

    async def run_async(
        self,
        ctx: WorkflowContext,
        step_id: int,
        defn: StepDef,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[Any, BaseException | None]:
        """The same, from an async workflow."""
        ...

    def step_boundary(self) -> None:
        """Called before and after each plain step body (Django drops stale connections)."""
        ...

    def enlist(self, engine: Any) -> tuple[Any, Callable[[Callable[[], None]], None] | None]:
        """The caller's open application transaction to create workflows in, and how to run
        a callback once it commits; ``(None, None)`` when there is none."""
        ...


T = TypeVar("T")


@runtime_checkable
class CallersTransaction(Protocol):
    """An adapter that also lets lookups, sends, cancels and waits join the caller's open
    transaction (Django's ``atomic()`` on the system database); the engine asks an adapter
    for these only when it declares them (``isinstance``), so other adapters need neither."""

    def callers_transaction(self, engine: Any) -> tuple[Any, Callable[..., Any] | None]:
        """The caller's open transaction, as ``(connection, on_commit)``, or ``(None, None)``."""
        ...

    async def in_callers_thread(self, fn: Callable[[], T]) -> T:
        """``fn()`` in the thread whose transaction ``callers_transaction`` would see (from
        async code bridged from a sync thread: that thread)."""
        ...


class TransactionDriver(Protocol):
    """The database API under :func:`run_transaction`. ``Tx`` is whatever ``transaction()``
    yields (a SQLAlchemy session and connection, a Django cursor)."""

    def transaction(self, defn: StepDef) -> contextlib.AbstractContextManager[Any]:
        """A transaction at the step's isolation, committed on a normal exit and rolled back
        on an exception."""
        ...

    def recorded(self, tx: Any, workflow_id: str, step_id: int) -> tuple[Any, ...] | None:
        """The step's output row ``(output, error)`` inside ``tx`` (setting its timeouts)."""
        ...

    def record(self, tx: Any, workflow_id: str, step_id: int, output: str) -> None:
        """Write the step's output row inside ``tx``, after the body's own pending writes."""
        ...

    def recorded_outside(self, workflow_id: str, step_id: int) -> tuple[Any, ...] | None:
        """The output row as committed, read after ``tx`` rolled back."""
        ...

    def in_step(self, tx: Any) -> contextlib.AbstractContextManager[None]:
        """What the body sees while it runs (``sql_session()`` for SQLAlchemy)."""
        ...

    def failure(self, exc: BaseException, in_step_code: bool) -> str | None:
        """``OUTAGE``, ``CONFLICT`` or None (the step's own error). ``in_step_code``: raised
        through the body, where only a lost connection or a timeout counts as an outage."""
        ...

    def can_retry(self) -> bool:
        """False inside a caller's own open transaction, which an outage has broken."""
        ...

    def after_failure(self) -> None:
        """Drop what an outage left broken (a dead connection) before the next attempt."""
        ...


def sqlstate(exc: BaseException | None) -> str | None:
    """The SQLSTATE of a driver error, wrapped (SQLAlchemy ``orig``, Django ``__cause__``)
    or not."""
    seen = 0
    while exc is not None and seen < 4:
        code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if isinstance(code, str):
            return code
        exc = getattr(exc, "orig", None) or exc.__cause__
        seen += 1
    return None


def retryable_sqlstate(exc: BaseException) -> bool:
    code = sqlstate(exc)
    return code is not None and code.startswith(_RETRY_SQLSTATES)


class _Rollback(Exception):
    def __init__(self, error: BaseException):
        self.error = error


_RETRY = None  # an attempt's result that says: run the step again


def _decode(
    serializer: Any, ctx: WorkflowContext, row: tuple[Any, ...]
) -> tuple[Any, BaseException | None]:
    if row[1] is not None:
        return None, decode_error(serializer, row[1], ctx.workflow_id)
    return (None if row[0] is None else serializer.loads(row[0])), None


def _encode(serializer: Serializer, defn: StepDef, value: Any) -> str:
    try:
        return serializer.dumps(value)
    except Exception as exc:  # a custom serializer may raise anything
        raise _Rollback(
            SerializationError(f"the result of {defn.name!r} cannot be serialized: {exc}")
        ) from None


def _body_failed(exc: BaseException, defn: StepDef) -> _Rollback:
    if unwinds(exc):
        raise exc
    return _Rollback(as_failure(defn, exc))


class _Attempts:
    """The decisions :func:`run_transaction` and :func:`run_transaction_async` share: what
    a failed attempt means, and how long to pause before the next (doubling up to 5 s)."""

    def __init__(self, driver: Any, serializer: Any, ctx: WorkflowContext, defn: StepDef):
        self.driver, self.serializer, self.ctx, self.defn = driver, serializer, ctx, defn
        self.delay = 0.1
        self.failure: BaseException | None = None

    def raised(self, exc: Exception) -> None:
        """The attempt failed outside the body: retry an outage, re-raise anything else."""
        if self.driver.failure(exc, in_step_code=False) != OUTAGE or not self.driver.can_retry():
            raise exc
        self.failure = exc

    def body_error(
        self, error: BaseException, committed: tuple[Any, ...] | None
    ) -> tuple[Any, BaseException | None] | None:
        """The body (or encoding its result) failed and the transaction rolled back;
        ``committed`` is the output row as committed meanwhile (another execution's)."""
        if committed is not None:
            log.info(
                "@transaction %s of workflow %s: another execution committed it first (%s "
                "here is its consequence); its outcome is the step's",
                self.defn.name,
                self.ctx.workflow_id,
                type(error).__name__,
            )
            return _decode(self.serializer, self.ctx, committed)
        if self.driver.failure(error, in_step_code=True) == OUTAGE and self.driver.can_retry():
            self.failure = error
            return _RETRY
        return None, error

    def conflict(
        self, exc: Exception, committed: tuple[Any, ...] | None
    ) -> tuple[Any, BaseException | None]:
        """Our output row (or the commit) hit a unique key: another execution committed."""
        if committed is None:
            raise exc
        return _decode(self.serializer, self.ctx, committed)

    def pause(self) -> float:
        self.driver.after_failure()
        delay, self.delay = self.delay, min(self.delay * 2, 5.0)
        log.warning(
            "@transaction %s of workflow %s: database unavailable (%s); retrying in %.1fs",
            self.defn.name,
            self.ctx.workflow_id,
            type(self.failure).__name__,
            delay,
        )
        return delay


def run_transaction(
    driver: TransactionDriver,
    serializer: Any,
    ctx: WorkflowContext,
    step_id: int,
    defn: StepDef,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[Any, BaseException | None]:
    """Run a ``@transaction`` step exactly once through ``driver``; an outage pauses it."""
    attempts = _Attempts(driver, serializer, ctx, defn)
    while True:
        try:
            outcome = _attempt(driver, attempts, ctx, step_id, defn, args, kwargs)
        except Exception as exc:
            attempts.raised(exc)
            outcome = _RETRY
        if outcome is not _RETRY:
            return outcome
        if ctx.cancel_event.wait(attempts.pause()):
            raise Aborted(ctx.workflow_id) from None


def _attempt(
    driver: TransactionDriver,
    attempts: _Attempts,
    ctx: WorkflowContext,
    step_id: int,
    defn: StepDef,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[Any, BaseException | None] | None:
    wid = ctx.workflow_id
    try:
        with driver.transaction(defn) as tx:
            row = driver.recorded(tx, wid, step_id)
            if row is not None:
                return _decode(attempts.serializer, ctx, row)
            with driver.in_step(tx):
                token = ctxmod.mark_in_step()
                try:
                    value = defn.fn(*args, **kwargs)
                except BaseException as exc:
                    raise _body_failed(exc, defn) from exc
                finally:
                    ctxmod.unmark_in_step(token)
            driver.record(tx, wid, step_id, _encode(attempts.serializer, defn, value))
        return value, None
    except _Rollback as rollback:
        return attempts.body_error(rollback.error, driver.recorded_outside(wid, step_id))
    except Exception as exc:
        if driver.failure(exc, in_step_code=False) != CONFLICT:
            raise
        return attempts.conflict(exc, driver.recorded_outside(wid, step_id))


class AsyncTransactionDriver(Protocol):
    """:class:`TransactionDriver` for an async database API (SQLAlchemy ``AsyncEngine``)."""

    def transaction(self, defn: StepDef) -> contextlib.AbstractAsyncContextManager[Any]: ...

    async def recorded(self, tx: Any, workflow_id: str, step_id: int) -> tuple[Any, ...] | None: ...

    async def record(self, tx: Any, workflow_id: str, step_id: int, output: str) -> None: ...

    async def recorded_outside(self, workflow_id: str, step_id: int) -> tuple[Any, ...] | None: ...

    def in_step(self, tx: Any) -> contextlib.AbstractContextManager[None]: ...

    def failure(self, exc: BaseException, in_step_code: bool) -> str | None: ...

    def can_retry(self) -> bool: ...

    def after_failure(self) -> None: ...


async def run_transaction_async(
    driver: AsyncTransactionDriver,
    serializer: Any,
    ctx: WorkflowContext,
    step_id: int,
    defn: StepDef,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[Any, BaseException | None]:
    """The async driver of :func:`run_transaction`: the same steps and the same decisions
    (``_Attempts``), awaiting the database."""
    attempts = _Attempts(driver, serializer, ctx, defn)
    wid = ctx.workflow_id
    while True:
        outcome: tuple[Any, BaseException | None] | None
        try:
            try:
                async with driver.transaction(defn) as tx:
                    row = await driver.recorded(tx, wid, step_id)
                    if row is not None:
                        return _decode(serializer, ctx, row)
                    with driver.in_step(tx):
                        token = ctxmod.mark_in_step()
                        try:
                            value = await defn.fn(*args, **kwargs)
                        except BaseException as exc:
                            raise _body_failed(exc, defn) from exc
                        finally:
                            ctxmod.unmark_in_step(token)
                    await driver.record(tx, wid, step_id, _encode(serializer, defn, value))
                return value, None
            except _Rollback as rollback:
                committed = await driver.recorded_outside(wid, step_id)
                outcome = attempts.body_error(rollback.error, committed)
            except Exception as exc:
                if driver.failure(exc, in_step_code=False) != CONFLICT:
                    raise
                outcome = attempts.conflict(exc, await driver.recorded_outside(wid, step_id))
        except Exception as exc:
            attempts.raised(exc)
            outcome = _RETRY
        if outcome is not _RETRY:
            return outcome
        await asyncio.sleep(attempts.pause())
        ctx.check_live()


# -- SQLAlchemy ---------------------------------------------------------------------------------


def _named(sql: str) -> str:
    """``%s`` placeholders as SQLAlchemy ``text()`` names ``:p0``, ``:p1``, …"""
    parts = sql.split("%s")
    return "".join(part + (f":p{i}" if i < len(parts) - 1 else "") for i, part in enumerate(parts))


def _params(*values: Any) -> dict[str, Any]:
    return {f"p{i}": v for i, v in enumerate(values)}


class _SQLAlchemyStatements:
    """What the sync and async SQLAlchemy drivers share: statements, classification."""

    def __init__(self, timeouts: TransactionTimeouts) -> None:
        self.timeouts = timeouts
        self.select = _named(SELECT_OUTPUT)
        self.select_with_timeouts = _named(SELECT_OUTPUT_WITH_TIMEOUTS)
        self.insert = _named(INSERT_OUTPUT)

    def lookup(self, dialect: str, workflow_id: str, step_id: int) -> tuple[str, dict[str, Any]]:
        if dialect == "postgresql":
            lock, idle = self.timeouts.settings()
            return self.select_with_timeouts, _params(lock, idle, workflow_id, step_id)
        return self.select, _params(workflow_id, step_id)

    @staticmethod
    def found(row: Any) -> tuple[Any, ...] | None:
        if row is None or (len(row) > 2 and row[2] is None):
            return None  # the PostgreSQL lookup always returns a row; no output joined
        return (row[0], row[1])

    def failure(self, exc: BaseException, in_step_code: bool) -> str | None:
        from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
        from sqlalchemy.exc import TimeoutError as PoolTimeout

        # A full pool is the database (or its capacity) being unavailable: wait, don't fail.
        if isinstance(exc, PoolTimeout):
            return OUTAGE
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return OUTAGE
        if retryable_sqlstate(exc):
            return OUTAGE
        if isinstance(exc, OperationalError):
            if not in_step_code or "database is locked" in str(exc):
                return OUTAGE
            return None
        if isinstance(exc, IntegrityError) and not in_step_code:
            return CONFLICT
        return None


class SQLAlchemyTransactions:
    """Runs ``@transaction`` steps in a SQLAlchemy session (sync Engine or AsyncEngine).

    Parameters:
        engine_or_url: the application database: a SQLAlchemy Engine or AsyncEngine, or a URL
            (then the engine is created here, its pool sized to ``pool_size``).
        serializer: encodes the steps' results.
        migrate: create or upgrade ``durable_transaction_outputs`` when it is missing or old.
        timeouts: see :class:`TransactionTimeouts`.
        pool_size: connections for an engine created from a URL: as many as steps may run at
            once (the engine's worker concurrency), so a slow database makes steps wait for
            it rather than for each other; a pool timeout is treated as an outage.
    """

    def __init__(
        self,
        engine_or_url: Any,
        serializer: Any,
        *,
        migrate: bool = False,
        timeouts: TransactionTimeouts | dict[str, Any] | None = None,
        pool_size: int = 64,
    ):
        self.timeouts = TransactionTimeouts.of(timeouts)
        # From a URL, async steps get an AsyncEngine on the same database when they first
        # run, so one worker (``durable worker --app-database URL``) serves sync and async
        # @transaction steps alike.
        self._url = engine_or_url if isinstance(engine_or_url, str) else None
        self._pool_size = pool_size
        self._async_engine: Any = None
        if isinstance(engine_or_url, str):
            engine_or_url = _create_engine(engine_or_url, pool_size)
        self.engine = engine_or_url
        # Checked by name so that sync users need not install greenlet for sqlalchemy.ext.asyncio.
        self.is_async = any(c.__name__ == "AsyncEngine" for c in type(engine_or_url).__mro__)
        self.serializer = serializer
        # Checked once (reads only); created or upgraded here only when ``migrate`` allows.
        self.migrate = migrate
        self._table_ready = False
        self._lock = threading.Lock()
        self._statements = _SQLAlchemyStatements(self.timeouts)

    def _ensure_table(self) -> None:
        if self._table_ready:
            return
        with self._lock:
            if not self._table_ready:
                with self.engine.begin() as conn:
                    ensure_app_schema(conn, self.migrate)
                self._table_ready = True

    @property
    def async_engine(self) -> Any:
        """The AsyncEngine async steps run on: the given one, or (given a URL) one created on
        the same database at first use; None for a sync Engine given as an object."""
        if self.is_async:
            return self.engine
        if self._async_engine is None and self._url is not None:
            with self._lock:
                if self._async_engine is None:
                    self._async_engine = _create_async_engine(self._url, self._pool_size)
        return self._async_engine

    async def _ensure_table_async(self) -> None:
        if self._table_ready:
            return
        async with self.async_engine.begin() as conn:
            await conn.run_sync(ensure_app_schema, self.migrate)
        self._table_ready = True

    # -- TransactionAdapter ---------------------------------------------------------------------

    def run(
        self,
        ctx: WorkflowContext,
        step_id: int,
        defn: StepDef,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[Any, BaseException | None]:
        """Run the step in one transaction; a database outage pauses it instead of failing it."""
        if self.is_async:
            raise TypeError(
                f"@transaction {defn.name!r} is sync but the application database is an AsyncEngine; "
                "make the step `async def`."
            )
        return run_transaction(_SyncDriver(self), self.serializer, ctx, step_id, defn, args, kwargs)

    async def run_async(
        self,
        ctx: WorkflowContext,
        step_id: int,
        defn: StepDef,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[Any, BaseException | None]:
        """The async twin of :meth:`run`, with the same pause-and-retry on an outage."""
        if not defn.is_async and not self.is_async:
            return await asyncio.to_thread(self.run, ctx, step_id, defn, args, kwargs)
        if self.async_engine is None:
            raise TypeError(
                f"async @transaction {defn.name!r} needs an AsyncEngine (or a URL) as the "
                "application database; it was given a sync Engine"
            )
        return await run_transaction_async(
            _AsyncDriver(self), self.serializer, ctx, step_id, defn, args, kwargs
        )

    def step_boundary(self) -> None:
        """Nothing to tidy between plain steps: the pool checks connections out per step."""

    def enlist(self, engine: Any) -> tuple[Any, Callable[[Callable[[], None]], None] | None]:
        """No open application transaction to join (``fastapi_durable`` overrides this)."""
        return None, None


@contextlib.contextmanager
def _bound_session(session: Any) -> Iterator[None]:
    """``sql_session()`` returns ``session`` while the step's body runs."""
    token = _session.set(session)
    try:
        yield
    finally:
        _session.reset(token)


def _create_engine(url: str, pool_size: int) -> Any:
    from sqlalchemy import create_engine

    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    size = max(1, int(pool_size))
    # Idle connections kept: up to 10; the rest of the concurrency as overflow, opened when
    # needed and closed when returned. A checkout waits up to 30 s, then counts as an outage.
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=min(size, 10),
        max_overflow=max(size - 10, 0),
        pool_timeout=30,
    )


def _create_async_engine(url: str, pool_size: int) -> Any:
    """An AsyncEngine on the database ``url`` names (psycopg's async mode, aiosqlite)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    if url.startswith("postgres://"):
        url = "postgresql://" + url.split("://", 1)[1]
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return create_async_engine(parsed.set(drivername="sqlite+aiosqlite"))
    if backend == "postgresql":
        size = max(1, int(pool_size))
        return create_async_engine(
            parsed.set(drivername="postgresql+psycopg"),
            pool_pre_ping=True,
            pool_size=min(size, 10),
            max_overflow=max(size - 10, 0),
            pool_timeout=30,
        )
    return create_async_engine(parsed)


class _SQLAlchemyDriver:
    """What the sync and async SQLAlchemy drivers share: everything but the I/O."""

    def __init__(self, adapter: SQLAlchemyTransactions) -> None:
        self.adapter = adapter
        self.statements = adapter._statements

    def in_step(self, tx: Any) -> contextlib.AbstractContextManager[None]:
        return _bound_session(tx[0])

    def failure(self, exc: BaseException, in_step_code: bool) -> str | None:
        return self.statements.failure(exc, in_step_code)

    def can_retry(self) -> bool:
        return True

    def after_failure(self) -> None:
        pass  # the pool invalidated the dead connection; pre-ping checks the next one


class _SyncDriver(_SQLAlchemyDriver):
    """:class:`TransactionDriver` over a SQLAlchemy ``Engine`` and ``Session``."""

    @contextlib.contextmanager
    def transaction(self, defn: StepDef) -> Iterator[Any]:
        from sqlalchemy.orm import Session

        self.adapter._ensure_table()
        with Session(self.adapter.engine) as session, session.begin():
            options = {"isolation_level": defn.isolation} if defn.isolation else {}
            yield session, session.connection(execution_options=options)

    def recorded(self, tx: Any, workflow_id: str, step_id: int) -> tuple[Any, ...] | None:
        from sqlalchemy import text

        _, conn = tx
        sql, params = self.statements.lookup(conn.dialect.name, workflow_id, step_id)
        return self.statements.found(conn.execute(text(sql), params).first())

    def record(self, tx: Any, workflow_id: str, step_id: int, output: str) -> None:
        from sqlalchemy import text

        session, conn = tx
        session.flush()
        conn.execute(text(self.statements.insert), _params(workflow_id, step_id, output, now_ms()))

    def recorded_outside(self, workflow_id: str, step_id: int) -> tuple[Any, ...] | None:
        from sqlalchemy import text

        with self.adapter.engine.connect() as conn:
            row = conn.execute(text(self.statements.select), _params(workflow_id, step_id))
            return self.statements.found(row.first())


class _AsyncDriver(_SQLAlchemyDriver):
    """:class:`AsyncTransactionDriver` over a SQLAlchemy ``AsyncEngine`` and ``AsyncSession``."""

    @contextlib.asynccontextmanager
    async def transaction(self, defn: StepDef) -> AsyncIterator[Any]:
        from sqlalchemy.ext.asyncio import AsyncSession

        await self.adapter._ensure_table_async()
        async with AsyncSession(self.adapter.async_engine) as session, session.begin():
            options = {"isolation_level": defn.isolation} if defn.isolation else {}
            yield session, await session.connection(execution_options=options)

    async def recorded(self, tx: Any, workflow_id: str, step_id: int) -> tuple[Any, ...] | None:
        from sqlalchemy import text

        _, conn = tx
        sql, params = self.statements.lookup(conn.dialect.name, workflow_id, step_id)
        return self.statements.found((await conn.execute(text(sql), params)).first())

    async def record(self, tx: Any, workflow_id: str, step_id: int, output: str) -> None:
        from sqlalchemy import text

        session, conn = tx
        await session.flush()
        await conn.execute(
            text(self.statements.insert), _params(workflow_id, step_id, output, now_ms())
        )

    async def recorded_outside(self, workflow_id: str, step_id: int) -> tuple[Any, ...] | None:
        from sqlalchemy import text

        async with self.adapter.async_engine.connect() as conn:
            row = await conn.execute(text(self.statements.select), _params(workflow_id, step_id))
            return self.statements.found(row.first())


def encode_transaction_error(serializer: Any, exc: BaseException) -> str:
    return encode_error(serializer, exc)
