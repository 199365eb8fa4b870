"""FastAPI app for the research agent.

Run from this folder: ``uvicorn app:app``. Settings from the environment:
``AGENT_DATABASE_URL`` (default ``sqlite:///agent.sqlite3``), ``AGENT_MODEL`` (a Pydantic AI
model name; default a scripted model that needs no network), ``AGENT_ADMIN_PASSWORD`` (the
``admin`` user of the /durable dashboard and API; default ``admin``), ``AGENT_STEP_DELAY``
(simulated tool latency in seconds), ``AGENT_APPROVAL_TIMEOUT`` (seconds; default a day).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
from typing import Annotated, Any

from agent import research
from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from models import ResearchRequest
from pydantic import BaseModel, Field
from service import create_tables, durable

from durable_core.contrib.pydantic_ai import APPROVAL_TOPIC, EVENTS_STREAM
from durable_core.errors import WorkflowNotFound

ADMIN_PASSWORD = os.environ.get("AGENT_ADMIN_PASSWORD", "admin")
basic = HTTPBasic(realm="durable")


def require_admin(credentials: Annotated[HTTPBasicCredentials, Depends(basic)]) -> None:
    ok = secrets.compare_digest(credentials.username, "admin") and secrets.compare_digest(
        credentials.password, ADMIN_PASSWORD
    )
    if not ok:
        raise HTTPException(401, "wrong credentials", headers={"WWW-Authenticate": "Basic"})


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    create_tables()
    async with durable.lifespan(app):
        yield


app = FastAPI(
    title="Research agent", lifespan=lifespan, exception_handlers=durable.exception_handlers
)
app.include_router(durable.router(dependencies=[Depends(require_admin)]), prefix="/durable")


class ResearchIn(BaseModel):
    topic: str = Field(min_length=1, max_length=200)


class ResearchOut(BaseModel):
    workflow_id: str
    status: str
    #: Tool calls waiting for a human: ``[{"tool_call_id", "tool_name", "args"}]``.
    pending: list[dict[str, Any]] = []
    result: dict | None = None


class ApprovalIn(BaseModel):
    approved: bool
    comment: str = Field(default="", max_length=2000)


@app.post("/research", status_code=202, response_model=ResearchOut)
async def start_research(
    body: ResearchIn, session: durable.SessionDep, key: durable.IdempotencyKeyDep
) -> ResearchOut:
    """Start the agent. Send an ``Idempotency-Key`` header to retry safely."""
    handle = await durable.start_workflow(research, body.topic, workflow_id=key)
    session.merge(ResearchRequest(workflow_id=handle.workflow_id, topic=body.topic))
    return ResearchOut(workflow_id=handle.workflow_id, status="PENDING")


@app.get("/research/{workflow_id}", response_model=ResearchOut)
def show_research(workflow_id: str, engine: durable.EngineDep) -> ResearchOut:
    status = engine.get_workflow_status(workflow_id)
    pending = engine.get_event(workflow_id, APPROVAL_TOPIC, timeout=0) or []
    result = status.result if isinstance(status.result, dict) else None
    return ResearchOut(
        workflow_id=workflow_id, status=status.status, pending=pending, result=result
    )


@app.post("/research/{workflow_id}/approval", status_code=202)
def approve(
    workflow_id: str, body: ApprovalIn, engine: durable.EngineDep, key: durable.IdempotencyKeyDep
) -> dict:
    """The human in the loop: the run waiting on its approval tool receives this decision as
    a message and continues (a denial reaches the model with the comment)."""
    engine.retrieve_workflow(workflow_id)
    decision: dict[str, Any] = {"approved": body.approved}
    if not body.approved:
        decision["message"] = body.comment or "Rejected by the reviewer."
    engine.send(workflow_id, decision, topic=APPROVAL_TOPIC, idempotency_key=key)
    return {"workflow_id": workflow_id, "sent": True}


@app.get("/research/{workflow_id}/progress", response_class=StreamingResponse)
def progress(
    workflow_id: str,
    engine: durable.EngineDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Server-Sent Events: a ``value`` event per agent event (Pydantic AI's JSON: text parts
    and deltas, tool calls and results, ``approval_required``, then ``done``), then ``end``. A
    reconnecting EventSource sends ``Last-Event-ID`` and continues after it."""
    try:
        engine.retrieve_workflow(workflow_id)
    except WorkflowNotFound:
        raise HTTPException(404, f"no research {workflow_id!r}") from None
    return durable.stream_response(workflow_id, EVENTS_STREAM, last_event_id=last_event_id)


@app.get("/", response_class=HTMLResponse)
def index() -> str:
    return (pathlib.Path(__file__).parent / "index.html").read_text(encoding="utf-8")
