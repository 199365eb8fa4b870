"""The FastAPI agent example's test suite, built on the test toolkit: the app's own lifespan
launches a TestEngine on a fresh database, the agent runs in the test's process (no worker,
no network: the example's default model is a scripted FunctionModel), a day of waiting for
approval takes no time, and crashing at every model request and tool call still finishes the
run with each note and the report written once."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("pydantic_ai")

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import text  # noqa: E402

from fastapi_durable.testing import use_test_engine  # noqa: E402
from tests.conftest import PG_URL  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "example_projects" / "fastapi_agent"
# Read when the example is imported: no simulated latency, and the tables its lifespan
# creates at import-time settings go to a scratch file rather than the working directory.
os.environ["AGENT_STEP_DELAY"] = "0"
os.environ.pop("AGENT_MODEL", None)
os.environ.setdefault(
    "AGENT_DATABASE_URL", f"sqlite:///{tempfile.mkdtemp(prefix='agent-')}/agent.sqlite3"
)
sys.path.insert(0, str(EXAMPLE))
import app as agent_app  # noqa: E402  (the example's modules import each other by bare name)
import models  # noqa: E402

from durable_core.contrib.pydantic_ai import EVENTS_STREAM  # noqa: E402

app, durable = agent_app.app, agent_app.durable
AUTH = ("admin", os.environ.get("AGENT_ADMIN_PASSWORD", "admin"))

# One step per model request and tool call: search, read three pages (one model turn asks for
# all three), ask to publish (waits for approval), publish, answer.
AGENT_STEPS = [
    "model:researcher",
    "tool:web_search",
    "model:researcher",
    "tool:read_page",
    "tool:read_page",
    "tool:read_page",
    "model:researcher",
    "tool:publish_report",
    "model:researcher",
]


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


def agent_steps(engine, workflow_id: str) -> list[str]:
    return [s.name for s in engine.list_steps(workflow_id) if not s.name.startswith("durable.")]


def sse_values(body: str) -> list[dict]:
    kind, values = None, []
    for line in body.splitlines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind == "value":
            values.append(json.loads(line[6:]))
    return values


def test_research_is_published_once_approved(client, engine):
    wid = client.post("/research", json={"topic": "durable execution"}).json()["workflow_id"]
    engine.run_until_idle(advance_time=False)  # researched, now waits for a human
    shown = client.get(f"/research/{wid}").json()
    assert shown["status"] == "PENDING"
    [call] = shown["pending"]
    assert call["tool_name"] == "publish_report"
    assert call["args"]["title"] == "Report on durable execution"
    assert count("agent_reports", wid) == 0  # nothing published before the approval
    client.post(f"/research/{wid}/approval", json={"approved": True})
    engine.run_until_idle()
    done = client.get(f"/research/{wid}").json()
    assert done["status"] == "SUCCESS" and done["result"]["status"] == "published"
    assert done["pending"] == []
    assert (count("agent_notes", wid), count("agent_reports", wid)) == (3, 1)
    assert agent_steps(engine, wid) == AGENT_STEPS

    values = sse_values(client.get(f"/research/{wid}/progress").text)
    assert values == list(engine.read_stream(wid, EVENTS_STREAM))  # all of them, in order
    kinds = [v["event_kind"] for v in values]
    tools = [v["part"]["tool_name"] for v in values if v["event_kind"] == "function_tool_call"]
    results = [v["part"]["tool_name"] for v in values if v["event_kind"] == "function_tool_result"]
    assert results == ["web_search", "read_page", "read_page", "read_page", "publish_report"]
    # publish_report is announced when the model asks for it, then again once it is approved.
    assert tools == results[:-1] + ["publish_report", "publish_report"]
    assert kinds.index("deferred_tool_requests") < kinds.index("approval_required")
    last_final = len(kinds) - 1 - kinds[::-1].index("final_result")  # the answer's
    assert kinds.index("approval_required") < last_final < kinds.index("done") == len(kinds) - 1
    answer = "".join(
        [
            v["part"]["content"]
            for v in values
            if v["event_kind"] == "part_start" and v["part"]["part_kind"] == "text"
        ]
        + [
            v["delta"]["content_delta"]
            for v in values
            if v["event_kind"] == "part_delta" and v["delta"]["part_delta_kind"] == "text"
        ]
    )
    assert answer == done["result"]["answer"]
    assert values[-1] == {"event_kind": "done", **done["result"]}


def test_a_rejection_reaches_the_model_with_its_comment(client, engine):
    wid = client.post("/research", json={"topic": "haste"}).json()["workflow_id"]
    engine.run_until_idle(advance_time=False)
    client.post(f"/research/{wid}/approval", json={"approved": False, "comment": "too thin"})
    result = engine.retrieve_workflow(wid).result(timeout=10)
    assert result["status"] == "rejected" and "too thin" in result["answer"]
    assert count("agent_reports", wid) == 0
    assert agent_steps(engine, wid)[-1] == "model:researcher"
    assert "tool:publish_report" not in agent_steps(engine, wid)  # a denied call never ran


def test_no_answer_for_a_day_rejects_without_waiting_a_day(client, engine):
    started, virtual = time.perf_counter(), engine.clock.time()
    wid = client.post("/research", json={"topic": "patience"}).json()["workflow_id"]
    result = engine.retrieve_workflow(wid).result(timeout=10)  # skips the day of waiting
    assert result["status"] == "rejected" and "No decision arrived" in result["answer"]
    assert engine.clock.time() - virtual >= 24 * 3600
    assert time.perf_counter() - started < 5
    assert count("agent_reports", wid) == 0


@pytest.mark.parametrize("where", ["before", "during", "after"])
@pytest.mark.parametrize(
    "step", ["model:researcher", "tool:web_search", "tool:read_page", "tool:publish_report"]
)
def test_a_crash_at_any_model_request_or_tool_call_finishes_the_run_once(
    client, engine, step, where
):
    crash = getattr(engine, f"crash_{where}")(step)
    wid = client.post("/research", json={"topic": f"{step} {where}"}).json()["workflow_id"]
    engine.run_until_idle(advance_time=False)
    if crash.fired:  # the crash came before the approval: what a restarted server does
        engine.recover()
        engine.run_until_idle(advance_time=False)
    client.post(f"/research/{wid}/approval", json={"approved": True})
    crash.wait()
    engine.recover()
    assert engine.retrieve_workflow(wid).result(timeout=10)["status"] == "published"
    assert (count("agent_notes", wid), count("agent_reports", wid)) == (3, 1)
    assert agent_steps(engine, wid) == AGENT_STEPS  # nothing recorded twice


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
        assert result["status"] == "rejected" and result["answer"].endswith("no")
        listing = await client.get("/durable/workflows", auth=AUTH)
        assert [w["workflow_id"] for w in listing.json()] == [wid]
