"""The FastAPI agent example's test suite, built on the test toolkit: the app's own lifespan
launches a TestEngine on a fresh database, the workflow runs in the test's process (no
worker), a day of waiting for approval takes no time, and crashing at every tool call still
writes each note and the report exactly once."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from fastapi_durable.testing import use_test_engine
from tests.conftest import PG_URL

EXAMPLE = Path(__file__).resolve().parents[2] / "example_projects" / "fastapi_agent"
# Read when the example is imported: no simulated tool latency, and the tables its lifespan
# creates at import-time settings go to a scratch file rather than the working directory.
os.environ["AGENT_STEP_DELAY"] = "0"
os.environ.setdefault(
    "AGENT_DATABASE_URL", f"sqlite:///{tempfile.mkdtemp(prefix='agent-')}/agent.sqlite3"
)
sys.path.insert(0, str(EXAMPLE))
import app as agent_app  # noqa: E402  (the example's modules import each other by bare name)
import models  # noqa: E402

app, durable = agent_app.app, agent_app.durable
AUTH = ("admin", os.environ.get("AGENT_ADMIN_PASSWORD", "admin"))


@pytest.fixture
def engine(backend):
    with use_test_engine(durable, None if backend == "sqlite" else PG_URL) as eng:
        models.Base.metadata.create_all(durable.app_engine)
        yield eng


@pytest.fixture
def client(engine):
    with TestClient(app) as c:  # runs the app's lifespan, which launches the test engine
        yield c


def count(table: str, workflow_id: str) -> int:
    with durable.app_engine.connect() as conn:
        return conn.execute(
            text(f"SELECT COUNT(*) FROM {table} WHERE workflow_id = :w"), {"w": workflow_id}
        ).scalar()


def test_research_is_published_once_approved(client, engine):
    wid = client.post("/research", json={"topic": "durable execution"}).json()["workflow_id"]
    engine.run_until_idle(advance_time=False)  # researched, now waits for a human
    shown = client.get(f"/research/{wid}").json()
    assert shown["status"] == "PENDING" and shown["draft"].startswith("Report on durable")
    client.post(f"/research/{wid}/approval", json={"approved": True, "comment": "ship it"})
    engine.run_until_idle()
    done = client.get(f"/research/{wid}").json()
    assert done["status"] == "SUCCESS" and done["result"]["status"] == "published"
    assert (count("agent_notes", wid), count("agent_reports", wid)) == (3, 1)
    events = client.get(f"/research/{wid}/progress").text
    assert events.count("event: value") == 6 and "published" in events


def test_no_answer_for_a_day_rejects_without_waiting_a_day(client, engine):
    started, virtual = time.perf_counter(), engine.clock.time()
    wid = client.post("/research", json={"topic": "patience"}).json()["workflow_id"]
    result = engine.retrieve_workflow(wid).result(timeout=10)  # skips the day of waiting
    assert result == {"status": "rejected", "comment": ""}
    assert engine.clock.time() - virtual >= 24 * 3600
    assert time.perf_counter() - started < 5
    assert count("agent_reports", wid) == 0


STEPS = ["web_search", "read_page", "save_note", "draft_report", "publish_report"]


@pytest.mark.parametrize("where", ["before", "during", "after"])
@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_tool_call_writes_every_note_and_the_report_once(
    client, engine, step, where
):
    crash = getattr(engine, f"crash_{where}")(step)
    wid = client.post("/research", json={"topic": f"{step} {where}"}).json()["workflow_id"]
    engine.run_until_idle(advance_time=False)
    client.post(f"/research/{wid}/approval", json={"approved": True})
    crash.wait()
    engine.recover()  # what the restarted server does at launch
    assert engine.retrieve_workflow(wid).result(timeout=10)["status"] == "published"
    assert (count("agent_notes", wid), count("agent_reports", wid)) == (3, 1)


async def test_with_httpx_asgi_transport(engine):
    transport = httpx.ASGITransport(app=app)
    async with (
        durable.lifespan(app),
        httpx.AsyncClient(transport=transport, base_url="http://agent") as client,
    ):
        created = await client.post("/research", json={"topic": "async"})
        wid = created.json()["workflow_id"]
        await client.post(f"/research/{wid}/approval", json={"approved": False, "comment": "no"})
        result = await engine.retrieve_workflow(wid).result_async(timeout=10)
        assert result == {"status": "rejected", "comment": "no"}
        listing = await client.get("/durable/workflows", auth=AUTH)
        assert [w["workflow_id"] for w in listing.json()] == [wid]
