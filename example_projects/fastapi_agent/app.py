"""FastAPI app for the research agent.

Run from this folder: ``uvicorn app:app``. Settings from the environment:
``AGENT_DATABASE_URL`` (default ``sqlite:///agent.sqlite3``), ``AGENT_ADMIN_PASSWORD``
(the ``admin`` user of the /durable dashboard and API; default ``admin``),
``AGENT_STEP_DELAY`` (simulated tool latency in seconds).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
from typing import Annotated

from agent import research
from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from models import Base, ResearchRequest
from pydantic import BaseModel, Field
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from durable_core.errors import WorkflowNotFound
from durable_core.store import parse_database_url
from fastapi_durable import Durable

DATABASE_URL = os.environ.get("AGENT_DATABASE_URL", "sqlite:///agent.sqlite3")
ADMIN_PASSWORD = os.environ.get("AGENT_ADMIN_PASSWORD", "admin")

# One database for the app's tables and the workflows: starting a workflow commits with the
# request's own writes.
app_engine = create_engine(parse_database_url(DATABASE_URL).sqlalchemy, pool_pre_ping=True)
durable = Durable(database_url=DATABASE_URL, app_engine=app_engine)
basic = HTTPBasic(realm="durable")


def require_admin(credentials: Annotated[HTTPBasicCredentials, Depends(basic)]) -> None:
    ok = secrets.compare_digest(credentials.username, "admin") and secrets.compare_digest(
        credentials.password, ADMIN_PASSWORD
    )
    if not ok:
        raise HTTPException(401, "wrong credentials", headers={"WWW-Authenticate": "Basic"})


def create_tables() -> None:
    """Create the agent's tables; several workers may start at once, so PostgreSQL takes a
    lock and a lost race on SQLite (table already exists) is retried."""
    for attempt in range(3):
        try:
            with app_engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(7272746)"))
                Base.metadata.create_all(conn)
            return
        except DBAPIError:
            if attempt == 2:
                raise


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
    draft: str | None = None
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
    draft = engine.get_event(workflow_id, "draft", timeout=0)
    result = status.result if isinstance(status.result, dict) else None
    return ResearchOut(workflow_id=workflow_id, status=status.status, draft=draft, result=result)


@app.post("/research/{workflow_id}/approval", status_code=202)
def approve(
    workflow_id: str, body: ApprovalIn, engine: durable.EngineDep, key: durable.IdempotencyKeyDep
) -> dict:
    """The human in the loop: the waiting workflow receives this as a message."""
    engine.retrieve_workflow(workflow_id)
    engine.send(workflow_id, body.model_dump(), topic="approval", idempotency_key=key)
    return {"workflow_id": workflow_id, "sent": True}


@app.get("/research/{workflow_id}/progress", response_class=StreamingResponse)
def progress(
    workflow_id: str,
    engine: durable.EngineDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Server-Sent Events: ``value`` events with each progress record, then ``end``. A
    reconnecting EventSource sends ``Last-Event-ID`` and continues after it."""
    try:
        engine.retrieve_workflow(workflow_id)
    except WorkflowNotFound:
        raise HTTPException(404, f"no research {workflow_id!r}") from None
    return durable.stream_response(workflow_id, "progress", last_event_id=last_event_id)


@app.get("/", response_class=HTMLResponse)
def index() -> str:
    return (pathlib.Path(__file__).parent / "index.html").read_text(encoding="utf-8")
