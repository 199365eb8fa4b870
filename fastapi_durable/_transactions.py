"""Run ``@transaction`` steps on the app's SQLAlchemy engine, and enlist workflow starts made
during a request in that request's session, so they commit with its writes or not at all."""

from __future__ import annotations

import contextvars
import logging
import os
from collections.abc import Callable
from typing import Any

from durable_core.errors import AsyncCallRequired
from durable_core.integration import DatabaseURL, SQLAlchemyTransactions

log = logging.getLogger("fastapi_durable")

# The SessionDep session of the request being served (Session or AsyncSession).
request_session: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "fastapi_durable_request_session", default=None
)
# Inside AsyncSession.run_sync: the sync Session whose connection the insert may use.
bridged_session: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "fastapi_durable_bridged_session", default=None
)

_CALLBACKS = "fastapi_durable.on_commit"
_LISTENING = "fastapi_durable.listening"


def is_async_session(session: Any) -> bool:
    return hasattr(session, "sync_session") and hasattr(session, "run_sync")


class _DriverConnection:
    """The store's connection interface (``execute(sql, params)`` in the driver's paramstyle)
    on top of a SQLAlchemy Connection that is inside the request's transaction."""

    def __init__(self, connection: Any):
        self._connection = connection

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self._connection.exec_driver_sql(sql, tuple(params))


def _run_callbacks(session: Any) -> None:
    for callback in session.info.pop(_CALLBACKS, []):
        try:
            callback()
        except Exception:  # the row is committed: recovery will run it if this failed
            log.exception("starting a workflow after the request's commit failed")


def _drop_callbacks(session: Any) -> None:
    session.info.pop(_CALLBACKS, None)


def after_commit(session: Any, callback: Callable[[], None]) -> None:
    """Run ``callback`` once ``session`` commits; forget it if the session rolls back."""
    from sqlalchemy import event

    if not session.info.get(_LISTENING):
        event.listen(session, "after_commit", _run_callbacks)
        event.listen(session, "after_rollback", _drop_callbacks)
        session.info[_LISTENING] = True
    session.info.setdefault(_CALLBACKS, []).append(callback)


class RequestTransactions(SQLAlchemyTransactions):
    """``@transaction`` steps as in the core adapter, plus ``enlist``: when the app engine and
    the system database are one database, a workflow started or enqueued while a request holds
    a ``SessionDep`` session is inserted on that session's connection and runs after commit."""

    def __init__(self, app_engine: Any, serializer: Any, *, enlist_requests: bool):
        super().__init__(app_engine, serializer)
        self.enlist_requests = enlist_requests

    def enlist(self, engine: Any) -> tuple[Any, Callable[[Callable[[], None]], None] | None]:
        if not self.enlist_requests:
            return None, None
        session = bridged_session.get() or request_session.get()
        if session is None:
            return None, None
        if is_async_session(session):
            raise AsyncCallRequired(
                "This request's session is an AsyncSession: start workflows with "
                "`await durable.start_workflow(...)` / `await durable.enqueue(queue, ...)` so "
                "the workflow joins the request's transaction (a sync engine.start_workflow "
                "cannot run on an async connection)."
            )
        connection = session.connection()
        return _DriverConnection(connection), lambda callback: after_commit(session, callback)


def same_database(app_engine: Any, system: DatabaseURL) -> bool:
    """Whether a SQLAlchemy engine's URL names the system database (a first guess, made
    without connecting; ``Durable``'s lifespan confirms it with :func:`database_identity`)."""
    from sqlalchemy.engine import make_url

    url = app_engine.url
    backend = url.get_backend_name()
    if system.dialect == "sqlite":
        if backend != "sqlite" or not url.database:
            return False
        return bool(os.path.realpath(url.database) == os.path.realpath(system.path or ""))
    return bool(backend == "postgresql" and make_url(system.sqlalchemy).database == url.database)


# What one PostgreSQL database looks like from a connection to it: the server instance (its
# start time and port), the database's OID and the schema unqualified names resolve to. Two
# URLs that differ in spelling (localhost vs 127.0.0.1, a socket path, a DNS alias) give the
# same answer; two servers or two schemas do not.
_PG_IDENTITY = (
    "SELECT pg_postmaster_start_time()::text, current_setting('port'), "
    "(SELECT oid::text FROM pg_database WHERE datname = current_database()), current_schema()"
)


def system_identity(system: DatabaseURL) -> tuple[Any, ...] | None:
    """The identity of the system database (see ``_PG_IDENTITY``); None for SQLite."""
    if system.dialect != "postgresql":
        return None
    import psycopg

    with psycopg.connect(system.libpq, autocommit=True) as conn:
        row = conn.execute(_PG_IDENTITY).fetchone()
    return tuple(row) if row else None


async def app_identity(app_engine: Any, is_async: bool) -> tuple[Any, ...] | None:
    """The identity of the app engine's database, by the same query; None if not PostgreSQL."""
    if app_engine.url.get_backend_name() != "postgresql":
        return None
    from sqlalchemy import text

    if is_async:
        async with app_engine.connect() as conn:
            row = (await conn.execute(text(_PG_IDENTITY))).one()
    else:
        from starlette.concurrency import run_in_threadpool

        def query() -> Any:
            with app_engine.connect() as conn:
                return conn.execute(text(_PG_IDENTITY)).one()

        row = await run_in_threadpool(query)
    return tuple(row)
