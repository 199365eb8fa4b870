"""The management router: list, show, steps, cancel, resume, fork, SSE streams, queues
(pause, resume, limits), executors, dashboard."""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.

import datetime as dt
from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any, TypedDict

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)

from durable_core import Engine, Status
from durable_core.errors import ConfigurationError, WorkflowNotFound
from durable_core.integration import (
    METRICS_CONTENT_TYPE,
    TERMINAL,
    health_check,
    metrics_exposition,
)

from ._dashboard import change_events, fleet, workflow_page
from ._models import ExecutorOut, ForkIn, QueueLimitsIn, QueueOut, StepOut, WorkflowOut
from ._schedules import add_schedule_routes
from ._shutdown import ShutdownSignal
from ._sse import KEEPALIVE_SECONDS, parse_last_event_id, stream_response


class _Filters(TypedDict):
    """The filters a listing and its count share."""

    status: list[str] | None
    name: str | None
    queue: str | None
    created_after: dt.datetime | None
    created_before: dt.datetime | None


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No workflow has this ID"}}


def _not_found(workflow_id: str) -> HTTPException:
    return HTTPException(404, detail=str(WorkflowNotFound(workflow_id)))


def _status(engine: Engine, workflow_id: str) -> WorkflowOut:
    try:
        return WorkflowOut.of(engine.get_workflow_status(workflow_id))
    except WorkflowNotFound:
        raise _not_found(workflow_id) from None


#: The header a browser must send with a POST to the router (the dashboard's own fetches do).
ACTION_HEADER = "X-Durable-Action"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def refuse_cross_site_posts(request: Request) -> None:
    """CSRF defence for the router's POSTs (cancel, resume, fork, ...). A browser request
    (one with an ``Origin`` or ``Sec-Fetch-Site`` header) must carry ``X-Durable-Action``: a
    page on another origin cannot add a custom header without a CORS preflight the app would
    have to allow, so a forged form or ``fetch`` riding on the user's cookies or basic-auth
    credentials is refused. Clients that are not browsers (curl, httpx, the CLI) send neither
    header and are not affected."""
    if request.method in SAFE_METHODS:
        return
    headers = request.headers
    from_browser = "origin" in headers or "sec-fetch-site" in headers
    if from_browser and ACTION_HEADER.lower() not in headers:
        raise HTTPException(
            403,
            detail=f"A browser POST to the durable router must send the {ACTION_HEADER} "
            "header (the dashboard does): this refuses cross-site request forgery.",
        )


def build_router(
    get_engine: Callable[[], Engine],
    dependencies: list[Any],
    *,
    shutdown: ShutdownSignal,
    keepalive: float = KEEPALIVE_SECONDS,
) -> APIRouter:
    router = APIRouter(
        dependencies=[*dependencies, Depends(refuse_cross_site_posts)], tags=["durable"]
    )
    EngineDep = Annotated[Engine, Depends(get_engine)]
    # `:path` so that IDs holding "/" (idempotency keys such as "tenant/42/pay-1") route;
    # the routes with a suffix are declared before the bare one, which would swallow them.
    WorkflowId = Annotated[str, Path(description="The workflow's ID (may contain '/')")]

    @router.get("/workflows", response_model=list[WorkflowOut])
    def list_workflows(
        engine: EngineDep,
        request: Request,
        response: Response,
        status: Annotated[list[Status] | None, Query()] = None,
        name: str | None = None,
        queue: str | None = None,
        created_after: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
        newest_first: bool = True,
        after: Annotated[
            str | None,
            Query(description="Continue after this cursor (the X-Next-Cursor of a page)"),
        ] = None,
        workflow_id: Annotated[
            str | None, Query(description="Only the workflow with this exact ID")
        ] = None,
        summary: Annotated[
            bool, Query(description="Rows without args, kwargs and result (null)")
        ] = False,
        count: Annotated[
            bool, Query(description="Also count every match: the X-Total-Count header")
        ] = False,
    ) -> list[WorkflowOut]:
        """A page of workflows. A full page carries ``X-Next-Cursor`` and a ``Link: rel=next``
        header to the following one (keyset pagination: deep pages cost one index probe)."""
        filters: _Filters = {
            "status": [str(s) for s in status] if status else None,
            "name": name,
            "queue": queue,
            "created_after": created_after,
            "created_before": created_before,
        }
        try:
            rows = engine.list_workflows(
                **filters,
                limit=limit,
                offset=offset,
                newest_first=newest_first,
                after=after,
                workflow_ids=None if workflow_id is None else [workflow_id],
            )
            if count:
                total = len(rows) if workflow_id is not None else engine.count_workflows(**filters)
                response.headers["X-Total-Count"] = str(total)
        except ConfigurationError as exc:
            raise HTTPException(422, detail=str(exc)) from None
        if workflow_id is None and len(rows) == limit and rows[-1].cursor:
            cursor = rows[-1].cursor
            response.headers["X-Next-Cursor"] = cursor
            following = request.url.remove_query_params(["offset", "after"])
            response.headers["Link"] = (
                f'<{following.include_query_params(after=cursor)}>; rel="next"'
            )
        return [WorkflowOut.of(r, summary=summary) for r in rows]

    @router.get(
        "/workflows/{workflow_id:path}/steps", response_model=list[StepOut], responses=NOT_FOUND
    )
    def list_steps(engine: EngineDep, workflow_id: WorkflowId) -> list[StepOut]:
        try:
            return [StepOut.of(s) for s in engine.list_steps(workflow_id)]
        except WorkflowNotFound:
            raise _not_found(workflow_id) from None

    @router.post(
        "/workflows/{workflow_id:path}/cancel",
        response_model=WorkflowOut,
        responses={**NOT_FOUND, 409: {"description": "The workflow has already finished"}},
    )
    def cancel_workflow(engine: EngineDep, workflow_id: WorkflowId) -> WorkflowOut:
        current = _status(engine, workflow_id)
        if current.status in TERMINAL and current.status != "CANCELLED":
            raise HTTPException(
                409,
                detail=f"Workflow {workflow_id!r} has already finished ({current.status}); "
                "only PENDING or ENQUEUED workflows can be cancelled.",
            )
        engine.cancel_workflow(workflow_id)
        return _status(engine, workflow_id)

    @router.post(
        "/workflows/{workflow_id:path}/resume",
        response_model=WorkflowOut,
        responses={**NOT_FOUND, 409: {"description": "The workflow succeeded: nothing to resume"}},
    )
    def resume_workflow(engine: EngineDep, workflow_id: WorkflowId) -> WorkflowOut:
        # As with cancel: a request that cannot do what it asks is a 409, not a silent 200.
        current = _status(engine, workflow_id)
        if current.status == "SUCCESS":
            raise HTTPException(
                409,
                detail=f"Workflow {workflow_id!r} has already succeeded; only CANCELLED, "
                "ERROR or MAX_RECOVERY_ATTEMPTS_EXCEEDED workflows can be resumed "
                "(PENDING and ENQUEUED ones are left as they are).",
            )
        try:
            engine.resume_workflow(workflow_id)
        except WorkflowNotFound:
            raise _not_found(workflow_id) from None
        return _status(engine, workflow_id)

    @router.post(
        "/workflows/{workflow_id:path}/fork",
        response_model=WorkflowOut,
        status_code=201,
        responses={
            **NOT_FOUND,
            409: {"description": "The new workflow ID is taken"},
            422: {"description": "start_step is beyond the recorded steps"},
        },
    )
    def fork_workflow(engine: EngineDep, workflow_id: WorkflowId, body: ForkIn) -> WorkflowOut:
        _status(engine, workflow_id)
        if body.workflow_id is not None:
            try:
                engine.retrieve_workflow(body.workflow_id)
            except WorkflowNotFound:
                pass
            else:
                raise HTTPException(
                    409, detail=f"A workflow with ID {body.workflow_id!r} already exists."
                )
        try:
            handle = engine.fork_workflow(
                workflow_id, body.start_step, workflow_id=body.workflow_id
            )
        except ConfigurationError as exc:
            raise HTTPException(422, detail=str(exc)) from None
        return _status(engine, handle.workflow_id)

    @router.get(
        "/workflows/{workflow_id:path}/streams/{key}",
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"text/event-stream": {}},
                "description": "`value` events in order, then one `end` event",
            },
            **NOT_FOUND,
        },
    )
    async def stream(
        engine: EngineDep,
        workflow_id: WorkflowId,
        key: str,
        last_event_id: Annotated[
            str | None,
            Header(
                alias="Last-Event-ID",
                description="Sent by a reconnecting EventSource: continue after this value.",
            ),
        ] = None,
    ) -> StreamingResponse:
        after = parse_last_event_id(last_event_id)
        try:
            reader = engine.read_stream(workflow_id, key, after=after)
        except ConfigurationError as exc:
            raise HTTPException(422, detail=str(exc)) from None
        from starlette.concurrency import run_in_threadpool

        try:
            await run_in_threadpool(engine.retrieve_workflow, reader.workflow_id)
        except WorkflowNotFound:
            raise _not_found(workflow_id) from None
        return stream_response(
            engine, workflow_id, key, after=after, shutdown=shutdown, keepalive=keepalive
        )

    @router.get("/workflows/{workflow_id:path}", response_model=WorkflowOut, responses=NOT_FOUND)
    def show_workflow(engine: EngineDep, workflow_id: WorkflowId) -> WorkflowOut:
        return _status(engine, workflow_id)

    # -- queues managed at run time, executors ------------------------------------------
    # Queue names may hold "/" too: the routes with a suffix come before the bare one.
    QueueName = Annotated[str, Path(description="The queue's name (may contain '/')")]

    def _queue_call(call: Callable[[], Any]) -> QueueOut:
        try:
            return QueueOut.of(call())
        except ConfigurationError as exc:
            raise HTTPException(422, detail=str(exc)) from None

    @router.get("/queues", response_model=list[QueueOut])
    def list_queues(engine: EngineDep) -> list[QueueOut]:
        """Every queue declared here, managed, or holding work: paused, backlog, running and
        the limits in force (stored overrides over the code's declaration)."""
        return [QueueOut.of(q) for q in engine.list_queues()]

    @router.post("/queues/{name:path}/pause", response_model=QueueOut)
    def pause_queue(engine: EngineDep, name: QueueName) -> QueueOut:
        """Every worker stops claiming from the queue (running work goes on)."""
        return _queue_call(lambda: engine.pause_queue(name))

    @router.post("/queues/{name:path}/resume", response_model=QueueOut)
    def resume_queue(engine: EngineDep, name: QueueName) -> QueueOut:
        return _queue_call(lambda: engine.resume_queue(name))

    @router.post("/queues/{name:path}/reset", response_model=QueueOut)
    def reset_queue(engine: EngineDep, name: QueueName) -> QueueOut:
        """Drop the stored limits: the declaration is in force again (a pause stays)."""
        return _queue_call(lambda: engine.reset_queue(name))

    @router.patch(
        "/queues/{name:path}",
        response_model=QueueOut,
        responses={422: {"description": "A limit is out of range, or no limit was given"}},
    )
    def set_queue_limits(engine: EngineDep, name: QueueName, body: QueueLimitsIn) -> QueueOut:
        """Override limits fleet-wide: the fields sent are set (``null`` lifts a limit),
        the others stay as they are."""
        given = {field: getattr(body, field) for field in body.model_fields_set}
        return _queue_call(lambda: engine.set_queue_limits(name, **given))

    @router.get("/queues/{name:path}", response_model=QueueOut)
    def show_queue(engine: EngineDep, name: QueueName) -> QueueOut:
        return _queue_call(lambda: engine.get_queue(name))

    @router.get("/executors", response_model=list[ExecutorOut])
    def list_executors(
        engine: EngineDep,
        live: Annotated[bool | None, Query(description="Only live (true) or dead (false)")] = None,
        ids: Annotated[
            int, Query(ge=0, le=1000, description="Running workflow IDs per executor")
        ] = 20,
    ) -> list[ExecutorOut]:
        """Registered executors, freshest heartbeat first: live or dead (by this engine's
        lease), version, and what each runs."""
        return [
            ExecutorOut.of(e)
            for e in engine.list_executors(ids=ids)
            if live is None or e.live == live
        ]

    add_schedule_routes(router, EngineDep)

    @router.get("/metrics", response_class=PlainTextResponse)
    def metrics(engine: EngineDep) -> Response:
        """Prometheus exposition: this process's counters, queue backlog, executors."""
        return Response(metrics_exposition(engine.store), media_type=METRICS_CONTENT_TYPE)

    @router.get("/health/live")
    def health_live() -> dict[str, str]:
        """Liveness: the process answers; the database is not consulted (an outage must not
        make the orchestrator restart every web process)."""
        return {"status": "ok"}

    @router.get("/health/ready")
    def health_ready(engine: EngineDep) -> JSONResponse:
        """Readiness: the system database is reachable and migrated (503 otherwise)."""
        report = health_check(engine.store)
        return JSONResponse(report.as_dict(), status_code=200 if report.ok else 503)

    @router.get("/dashboard", response_class=HTMLResponse)
    def dashboard() -> HTMLResponse:
        """The dashboard: one dependency-free page over this router's JSON endpoints."""
        page = resources.files("fastapi_durable").joinpath("templates/dashboard.html")
        return HTMLResponse(
            page.read_text(encoding="utf-8"),
            headers={
                "Cache-Control": "no-store",
                "X-Frame-Options": "DENY",  # no clickjacking of the action buttons
                "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                "style-src 'unsafe-inline'; frame-ancestors 'none'",
            },
        )

    @router.get("/dashboard/workflow", responses=NOT_FOUND)
    def dashboard_workflow(
        engine: EngineDep, workflow_id: Annotated[str, Query(min_length=1)]
    ) -> dict[str, Any]:
        """A workflow's page: its step timeline (durations, retries, waits and until when),
        events, messages, streams, children and error tracebacks."""
        try:
            return workflow_page(engine, workflow_id)
        except WorkflowNotFound:
            raise _not_found(workflow_id) from None
        except ConfigurationError as exc:
            raise HTTPException(422, detail=str(exc)) from None

    @router.get("/dashboard/fleet")
    def dashboard_fleet(engine: EngineDep) -> dict[str, Any]:
        """Queues (depth, running, age of the oldest claimable item, limits), executors
        (heartbeat age, live, running), schedules, and the names filters choose from."""
        return fleet(engine)

    @router.get(
        "/dashboard/changes",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def dashboard_changes(engine: EngineDep) -> StreamingResponse:
        """SSE: a ``change`` event whenever the fleet's work changes, for live refresh."""
        return StreamingResponse(
            change_events(engine, shutdown, keepalive=keepalive),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
