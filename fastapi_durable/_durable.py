"""``Durable``: the engine's lifespan, the request dependencies and the router factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from durable_core import Engine, WorkflowHandle
from durable_core.errors import ConfigurationError, EngineAlreadyRunning, EngineNotRunning
from durable_core.integration import make_serializer, parse_database_url, resolve_database_url

from ._errors import exception_handlers
from ._idempotency import (
    IdempotencyKey,
    idempotency_key,
    request_fingerprint,
    reused_with_another_request,
    still_in_flight,
)
from ._shutdown import ShutdownSignal
from ._sse import KEEPALIVE_SECONDS, parse_last_event_id, stream_response
from ._transactions import (
    RequestTransactions,
    app_identity,
    bridged_session,
    is_async_session,
    request_session,
    same_database,
    system_identity,
)

log = logging.getLogger("fastapi_durable")

#: Connections the app engine ``Durable`` creates keeps open when idle; a burst opens more
#: (up to ``DEFAULT_APP_POOL_BURST`` in all) and closes them as they are returned, so a web
#: process does not hold a burst's connections for good.
DEFAULT_APP_POOL_IDLE = 2
DEFAULT_APP_POOL_BURST = 20


def default_app_engine(system: Any) -> Any:
    """The SQLAlchemy engine on the system database used when the app gives none."""
    from sqlalchemy import create_engine

    if system.dialect == "sqlite":
        return create_engine(system.sqlalchemy, pool_pre_ping=True)
    return create_engine(
        system.sqlalchemy,
        pool_pre_ping=True,
        pool_size=DEFAULT_APP_POOL_IDLE,
        max_overflow=DEFAULT_APP_POOL_BURST - DEFAULT_APP_POOL_IDLE,
    )


def _is_async_engine(engine: Any) -> bool:
    return any(c.__name__ == "AsyncEngine" for c in type(engine).__mro__)


class Durable:
    """Durable workflows in a FastAPI app.

    Parameters:
        database_url: the system database (as ``Engine``).
        app_engine: the app's SQLAlchemy ``Engine`` or ``AsyncEngine``: ``SessionDep`` sessions
            and ``@transaction`` steps run on it. Default: an engine on the system database.
        shutdown_timeout: seconds the lifespan's shutdown lets running steps finish.
        sse_keepalive: seconds between keep-alive comments on an idle SSE stream.
        idempotency_in_flight_timeout: seconds after which an ``Idempotency-Key`` whose
            request never finished (its process died) may be used again by a retry.
        **engine_options: any other ``Engine`` keyword argument.
    """

    def __init__(
        self,
        database_url: str | None = None,
        app_engine: Any = None,
        *,
        shutdown_timeout: float = 10.0,
        sse_keepalive: float = KEEPALIVE_SECONDS,
        idempotency_in_flight_timeout: float = 60.0,
        **engine_options: Any,
    ) -> None:
        if "app_database" in engine_options or "transactions" in engine_options:
            raise TypeError("Durable sets app_database and transactions itself; pass app_engine")
        self.database_url = resolve_database_url(database_url)
        system = parse_database_url(self.database_url)
        if app_engine is None:
            app_engine = default_app_engine(system)
        self.app_engine = app_engine
        self.is_async = _is_async_engine(app_engine)
        self._system = system
        # A first guess from the URLs; the lifespan asks both databases who they are.
        self.transactional_enqueue = same_database(app_engine, system)
        self.shutdown_timeout = shutdown_timeout
        self.sse_keepalive = sse_keepalive
        self.idempotency_in_flight_timeout = idempotency_in_flight_timeout
        self.shutdown_signal = ShutdownSignal()
        self._engine_options = engine_options
        self._explicit_executor_id = engine_options.get("executor_id") or os.environ.get(
            "DURABLE_EXECUTOR_ID"
        )
        self._engine: Engine | None = None
        self._engine_used = False
        self._engine_factory: Callable[..., Engine] = Engine
        self._new_engine()

        self.EngineDep = Annotated[Engine, Depends(self.get_engine)]
        self.SessionDep = Annotated[Any, Depends(self.get_session, scope="function")]
        self.IdempotencyKeyDep = Annotated[IdempotencyKey | None, Depends(self.request_key)]

    # -- the engine and its lifespan -----------------------------------------------------

    def _new_engine(self) -> Engine:
        options = dict(self._engine_options)
        # Generated here, in the process that serves (a pre-forking server may have built
        # this object in its master): every worker gets its own executor and never recovers
        # a sibling's in-flight work.
        options["executor_id"] = self._explicit_executor_id or (
            f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        serializer = make_serializer(options.pop("serializer", "json"))
        adapter = RequestTransactions(
            self.app_engine, serializer, enlist_requests=self.transactional_enqueue
        )
        self._adapter = adapter
        self._engine = self._engine_factory(
            self.database_url,
            app_database=self.app_engine,
            serializer=serializer,
            transactions=adapter,
            **options,
        )
        self._engine_pid = os.getpid()
        self._engine_used = False
        return self._engine

    def use_engine(
        self,
        factory: Callable[..., Engine],
        database_url: str | None = None,
        app_engine: Any = None,
    ) -> Engine:
        """From now on build the engine with ``factory`` (an ``Engine`` subclass such as
        ``durable_core.testing.TestEngine``), optionally on another system database and app
        engine (default: one on that database). Call it before the lifespan runs; returns
        the engine the next lifespan launches. ``fastapi_durable.testing`` uses it."""
        if self._engine is not None and self._engine.launched:
            raise EngineAlreadyRunning(
                "use_engine() must be called while the lifespan is not running: the engine "
                f"{self._engine!r} is launched (call it before the app starts, or after it stops)"
            )
        if database_url is not None:
            self.database_url = resolve_database_url(database_url)
            self._system = parse_database_url(self.database_url)
            if app_engine is None:
                app_engine = default_app_engine(self._system)
        if app_engine is not None:
            self.app_engine = app_engine
            self.is_async = _is_async_engine(app_engine)
        self.transactional_enqueue = same_database(self.app_engine, self._system)
        self._engine_factory = factory
        return self._new_engine()

    @property
    def engine(self) -> Engine:
        """The engine (launched while the lifespan runs)."""
        assert self._engine is not None
        return self._engine

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI | None = None) -> AsyncIterator[None]:
        """Launch the engine (migrate, recover, start queue workers and the scheduler) and
        shut it down. Use as ``FastAPI(lifespan=durable.lifespan)`` or inside your own."""
        if self._engine_used or self._engine_pid != os.getpid():
            self._new_engine()
        engine = self.engine
        self._engine_used = True
        await self._settle_transactional_starts()
        await asyncio.to_thread(engine.launch)
        self.shutdown_signal.start()
        try:
            yield
        finally:
            self.shutdown_signal.stop()  # open SSE streams end now: clients reconnect elsewhere
            await asyncio.to_thread(engine.shutdown, self.shutdown_timeout)

    async def _settle_transactional_starts(self) -> None:
        """Decide, by asking both databases, whether starts made in a request can join its
        transaction, and say in the log which way it is (the URLs alone mislead: the same
        database may be spelled ``localhost`` in one and ``127.0.0.1`` in the other)."""
        if self._system.dialect == "postgresql":
            system, app = await asyncio.gather(
                asyncio.to_thread(system_identity, self._system),
                app_identity(self.app_engine, self.is_async),
            )
            self.transactional_enqueue = system is not None and system == app
        self._adapter.enlist_requests = self.transactional_enqueue
        if self.transactional_enqueue:
            log.info(
                "fastapi_durable: the app engine is the system database: workflows started "
                "during a request with SessionDep commit with the request's writes or not at all"
            )
        else:
            log.warning(
                "fastapi_durable: the app engine (%s) is not the system database (%s): a "
                "workflow started during a request is stored at once, whether or not the "
                "request's transaction commits",
                self.app_engine.url.render_as_string(hide_password=True),
                self._system.redacted,
            )

    # -- dependencies ------------------------------------------------------------------

    def get_engine(self) -> Engine:
        """Dependency behind ``EngineDep``."""
        engine = self.engine
        if not engine.launched:
            raise EngineNotRunning(
                "The durable engine is not running: pass lifespan=durable.lifespan to FastAPI "
                "(or enter `async with durable.lifespan(app):` in your own lifespan)."
            )
        return engine

    async def request_key(
        self, request: Request, key: Annotated[str | None, Depends(idempotency_key)]
    ) -> AsyncIterator[IdempotencyKey | None]:
        """Dependency behind ``IdempotencyKeyDep``, following the IETF Idempotency-Key draft:
        the key is reserved with a fingerprint of the request while it runs; a reuse with
        another request is a 422, a retry while the first is still running a 409, and a
        retry after it succeeded gets ``key.replayed`` (the workflow started under the key
        is the first request's). A request that fails frees its key for the retry."""
        if key is None:
            yield None
            return
        engine = self.get_engine()
        fingerprint = request_fingerprint(
            request.method, request.url.path, request.url.query, await request.body()
        )
        now = engine.clock.now_ms()
        stale_before = now - int(self.idempotency_in_flight_timeout * 1000)
        state = await asyncio.to_thread(
            engine.store.reserve_request_key, key, fingerprint, now, stale_before
        )
        if state == "mismatch":
            raise reused_with_another_request(key)
        if state == "in_flight":
            raise still_in_flight(key)
        replayed = state == "done"
        succeeded = False
        try:
            yield IdempotencyKey(key, fingerprint=fingerprint, replayed=replayed)
            succeeded = True
        finally:
            if not replayed:
                await asyncio.to_thread(
                    engine.store.finish_request_key,
                    key,
                    fingerprint,
                    engine.clock.now_ms(),
                    succeeded,
                )

    async def get_session(self) -> AsyncIterator[Any]:
        """Dependency behind ``SessionDep``: one session per request that commits when the
        endpoint returns and rolls back when it raises. Workflows started meanwhile join it."""
        if self.is_async:
            from sqlalchemy.ext.asyncio import AsyncSession

            async with AsyncSession(self.app_engine, expire_on_commit=False) as session:
                token = request_session.set(session)
                try:
                    yield session
                except BaseException:
                    await session.rollback()
                    raise
                else:
                    await session.commit()
                finally:
                    _reset(request_session, token)
            return
        from sqlalchemy.orm import Session

        sync_session = Session(self.app_engine, expire_on_commit=False)
        token = request_session.set(sync_session)
        try:
            yield sync_session
        except BaseException:
            await run_in_threadpool(sync_session.rollback)
            raise
        else:
            await run_in_threadpool(sync_session.commit)
        finally:
            _reset(request_session, token)
            await run_in_threadpool(sync_session.close)

    # -- starting workflows from a request ----------------------------------------------

    async def start_workflow(self, fn: Any, *args: Any, **kwargs: Any) -> WorkflowHandle[Any]:
        """``engine.start_workflow`` from an async endpoint, joined to the request's session
        (also an ``AsyncSession``), without blocking the event loop."""
        engine = self.get_engine()
        return await self._in_request(lambda: engine.start_workflow(fn, *args, **kwargs))

    async def enqueue(self, queue: Any, fn: Any, *args: Any, **kwargs: Any) -> WorkflowHandle[Any]:
        """``queue.enqueue`` from an async endpoint, joined to the request's session."""
        self.get_engine()
        return await self._in_request(lambda: queue.enqueue(fn, *args, **kwargs))

    async def _in_request(self, call: Callable[[], WorkflowHandle[Any]]) -> WorkflowHandle[Any]:
        session = request_session.get()
        # Only a start that joins the request's AsyncSession must run inside run_sync (on the
        # loop thread, through the async driver); any other start goes to a worker thread so
        # a stalled system database never blocks the event loop.
        if self.transactional_enqueue and session is not None and is_async_session(session):

            def bridged(sync_session: Any) -> WorkflowHandle[Any]:
                token = bridged_session.set(sync_session)
                try:
                    return call()
                finally:
                    bridged_session.reset(token)

            handle: WorkflowHandle[Any] = await session.run_sync(bridged)
            return handle
        return await run_in_threadpool(call)

    # -- streams -------------------------------------------------------------------------

    def stream_response(
        self, workflow_id: str, key: str, *, last_event_id: str | None = None
    ) -> StreamingResponse:
        """A Server-Sent Events response over ``read_stream(workflow_id, key)`` for your own
        endpoint: pass the request's ``Last-Event-ID`` header so a reconnecting
        ``EventSource`` continues where it stopped; keep-alives every ``sse_keepalive``
        seconds; closed when the app shuts down."""
        return stream_response(
            self.get_engine(),
            workflow_id,
            key,
            after=parse_last_event_id(last_event_id),
            shutdown=self.shutdown_signal,
            keepalive=self.sse_keepalive,
        )

    # -- the management router ----------------------------------------------------------

    def router(self, dependencies: Sequence[Any] | None = None, public: bool = False) -> APIRouter:
        """JSON endpoints to inspect and operate workflows, SSE for streams and an HTML
        dashboard. ``dependencies`` (e.g. ``[Depends(require_admin)]``) guard every route;
        without them this raises unless ``public=True`` says the exposure is intended."""
        from ._router import build_router

        if not dependencies and not public:
            raise ConfigurationError(
                "durable.router() exposes every workflow's inputs and results and lets callers "
                "cancel, resume and fork them: pass dependencies=[Depends(your_auth)], or "
                "public=True if it really should be open."
            )
        return build_router(
            self.get_engine,
            list(dependencies or []),
            shutdown=self.shutdown_signal,
            keepalive=self.sse_keepalive,
        )

    @property
    def exception_handlers(self) -> dict[Any, Callable[..., Any]]:
        """For ``FastAPI(exception_handlers=...)``: durable errors become 404/409/422."""
        return exception_handlers()


def _reset(var: Any, token: Any) -> None:
    try:
        var.reset(token)
    except ValueError:  # exited in another context than it was entered
        var.set(None)
