"""The management router: list, show, steps, cancel, resume, fork, auth, OpenAPI."""
# No `from __future__ import annotations`: endpoints below annotate with a local `durable`.

import datetime as dt

import pytest
from fastapi import Depends, FastAPI

from durable_core.errors import ConfigurationError

from . import flows
from .conftest import ADMIN_TOKEN, make_app, make_durable, require_admin, running


@pytest.fixture
def durable(database_url, sync_app_engine):
    return make_durable(database_url, sync_app_engine)


async def test_list_show_and_steps(durable):
    app = make_app(durable)
    async with running(app, durable) as client:
        engine = durable.engine
        first = engine.start_workflow(flows.greet, "ada", workflow_id="g-1")
        await first.result_async()
        second = engine.start_workflow(flows.wait_for_go, workflow_id="w-1")

        listed = (await client.get("/durable/workflows")).json()
        assert [w["workflow_id"] for w in listed] == ["w-1", "g-1"]
        oldest = await client.get("/durable/workflows", params={"newest_first": False, "limit": 1})
        assert [w["workflow_id"] for w in oldest.json()] == ["g-1"]
        done = await client.get("/durable/workflows", params={"status": "SUCCESS"})
        assert [w["workflow_id"] for w in done.json()] == ["g-1"]
        by_name = await client.get(
            "/durable/workflows", params={"name": "tests.fastapi.flows.wait_for_go"}
        )
        assert [w["workflow_id"] for w in by_name.json()] == ["w-1"]
        future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
        assert (
            await client.get("/durable/workflows", params={"created_after": future})
        ).json() == []
        assert (
            await client.get("/durable/workflows", params={"status": "NOPE"})
        ).status_code == 422
        assert (await client.get("/durable/workflows", params={"offset": 1})).json()[0][
            "workflow_id"
        ] == "g-1"

        shown = (await client.get("/durable/workflows/g-1")).json()
        assert shown["status"] == "SUCCESS"
        assert shown["args"] == ["ada"]
        assert shown["result"] == "hello ADA"
        assert shown["executor_id"] == engine.executor_id

        steps = (await client.get("/durable/workflows/g-1/steps")).json()
        assert [(s["step_id"], s["result"]) for s in steps] == [(1, "ADA")]
        assert steps[0]["name"].endswith("shout")

        engine.send(second.workflow_id, "now", topic="go")
        assert await second.result_async() == "got now"


async def test_unknown_ids_are_404(durable):
    app = make_app(durable)
    async with running(app, durable) as client:
        for method, path, body in [
            ("GET", "/durable/workflows/nope", None),
            ("GET", "/durable/workflows/nope/steps", None),
            ("POST", "/durable/workflows/nope/cancel", None),
            ("POST", "/durable/workflows/nope/resume", None),
            ("POST", "/durable/workflows/nope/fork", {"start_step": 1}),
            ("GET", "/durable/workflows/nope/streams/progress", None),
        ]:
            response = await client.request(method, path, json=body)
            assert response.status_code == 404, (method, path)
            assert "nope" in response.json()["detail"]


async def test_cancel_resume_and_fork(durable):
    app = make_app(durable)
    async with running(app, durable) as client:
        engine = durable.engine
        waiting = engine.start_workflow(flows.wait_for_go, workflow_id="w-2")
        cancelled = await client.post("/durable/workflows/w-2/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "CANCELLED"

        engine.send("w-2", "later", topic="go")
        resumed = await client.post("/durable/workflows/w-2/resume")
        assert resumed.status_code == 200
        assert await waiting.result_async() == "got later"

        finished = await client.post("/durable/workflows/w-2/cancel")
        assert finished.status_code == 409
        assert "SUCCESS" in finished.json()["detail"]

        await engine.start_workflow(flows.greet, "bo", workflow_id="g-2").result_async()
        fork = await client.post(
            "/durable/workflows/g-2/fork", json={"start_step": 1, "workflow_id": "g-2-fork"}
        )
        assert fork.status_code == 201
        assert fork.json()["workflow_id"] == "g-2-fork"
        assert await engine.retrieve_workflow("g-2-fork").result_async() == "hello BO"
        taken = await client.post(
            "/durable/workflows/g-2/fork", json={"start_step": 1, "workflow_id": "g-2-fork"}
        )
        assert taken.status_code == 409
        beyond = await client.post("/durable/workflows/g-2/fork", json={"start_step": 9})
        assert beyond.status_code == 422
        assert "start_step" in beyond.text
        assert (await client.post("/durable/workflows/g-2/fork", json={})).status_code == 422


async def test_router_requires_auth_dependencies(durable):
    with pytest.raises(ConfigurationError, match="dependencies"):
        durable.router()
    with pytest.raises(ConfigurationError, match="public=True"):
        durable.router(dependencies=[])

    app = make_app(durable)
    async with running(app, durable) as client:
        durable.engine.start_workflow(flows.greet, "z", workflow_id="g-3")
        for path in [
            "/durable/workflows",
            "/durable/workflows/g-3",
            "/durable/dashboard",
            "/durable/workflows/g-3/streams/progress",
        ]:
            anonymous = await client.get(path, headers={"Authorization": ""})
            assert anonymous.status_code == 401, path
            wrong = await client.get(path, headers={"Authorization": "Bearer guess"})
            assert wrong.status_code == 401, path
        cancel = await client.post("/durable/workflows/g-3/cancel", headers={"Authorization": ""})
        assert cancel.status_code == 401
        authorized = await client.get("/durable/workflows/g-3")
        assert authorized.status_code == 200


async def test_public_router_is_explicit(durable):
    app = FastAPI()
    app.include_router(durable.router(public=True), prefix="/ops")
    async with running(app, durable) as client:
        response = await client.get("/ops/workflows", headers={"Authorization": ""})
        assert response.status_code == 200


async def test_openapi_documents_the_response_models(durable):
    app = make_app(durable)
    schema = app.openapi()
    assert {"WorkflowOut", "StepOut", "ForkIn"} <= set(schema["components"]["schemas"])
    listing = schema["paths"]["/durable/workflows"]["get"]
    assert listing["responses"]["200"]["content"]["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/WorkflowOut"
    }
    assert {p["name"] for p in listing["parameters"]} >= {
        "status",
        "name",
        "queue",
        "created_after",
        "created_before",
        "limit",
        "offset",
        "newest_first",
    }
    assert "text/event-stream" in str(
        schema["paths"]["/durable/workflows/{workflow_id}/streams/{key}"]
    )


async def test_dashboard_is_html_behind_the_guard(durable):
    app = make_app(durable)
    async with running(app, durable) as client:
        page = await client.get("/durable/dashboard")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "/workflows" in page.text
        assert ADMIN_TOKEN not in page.text


def test_require_admin_is_the_guard_used():
    assert callable(require_admin)
    assert Depends(require_admin).dependency is require_admin


async def test_ids_with_slashes_route_everywhere(durable):
    """Idempotency keys such as ``tenant/42/pay-1`` are valid workflow IDs: every route takes
    them, and the suffixed routes are not swallowed by the bare one."""
    app = make_app(durable)
    async with running(app, durable) as client:
        engine = durable.engine
        await engine.start_workflow(
            flows.greet, "ada", workflow_id="tenant/42/pay-1"
        ).result_async()
        base = "/durable/workflows/tenant/42/pay-1"
        shown = await client.get(base)
        assert shown.status_code == 200
        assert shown.json()["workflow_id"] == "tenant/42/pay-1"
        steps = await client.get(base + "/steps")
        assert [s["result"] for s in steps.json()] == ["ADA"]
        assert (await client.post(base + "/cancel")).status_code == 409  # finished
        assert (await client.post(base + "/resume")).status_code == 409  # succeeded
        fork = await client.post(base + "/fork", json={"start_step": 1, "workflow_id": "t/42/f"})
        assert fork.status_code == 201
        assert await engine.retrieve_workflow("t/42/f").result_async() == "hello ADA"
        stream = await client.get(base + "/streams/progress")
        assert stream.status_code == 200
        assert "event: end" in stream.text
        assert (await client.get("/durable/workflows/tenant/42/nope")).status_code == 404


async def test_resume_of_a_success_is_409_like_cancel(durable):
    app = make_app(durable)
    async with running(app, durable) as client:
        await durable.engine.start_workflow(flows.greet, "x", workflow_id="g-5").result_async()
        resumed = await client.post("/durable/workflows/g-5/resume")
        assert resumed.status_code == 409
        assert "succeeded" in resumed.json()["detail"]
        assert durable.engine.retrieve_workflow("g-5").status().status == "SUCCESS"


async def test_fork_refuses_unknown_body_fields(durable):
    app = make_app(durable)
    async with running(app, durable) as client:
        await durable.engine.start_workflow(flows.greet, "x", workflow_id="g-6").result_async()
        typo = await client.post(
            "/durable/workflows/g-6/fork", json={"start_step": 1, "new_id": "g-6-fork"}
        )
        assert typo.status_code == 422
        assert "new_id" in typo.text
        assert [w.workflow_id for w in durable.engine.list_workflows()] == ["g-6"]


async def test_listing_pages_by_cursor_counts_searches_by_id_and_slims_rows(durable):
    app = make_app(durable)
    async with running(app, durable) as client:
        engine = durable.engine
        ids = [f"p-{i:02d}" for i in range(7)]
        for wid in ids:
            await engine.start_workflow(flows.greet, wid, workflow_id=wid).result_async()
        first = await client.get("/durable/workflows", params={"limit": 3, "count": True})
        assert first.headers["X-Total-Count"] == "7"
        assert [w["workflow_id"] for w in first.json()] == ids[::-1][:3]
        assert 'rel="next"' in first.headers["Link"]
        seen = [w["workflow_id"] for w in first.json()]
        cursor = first.headers["X-Next-Cursor"]
        while cursor:
            page = await client.get("/durable/workflows", params={"limit": 3, "after": cursor})
            assert page.status_code == 200
            seen += [w["workflow_id"] for w in page.json()]
            cursor = page.headers.get("X-Next-Cursor")
        assert seen == ids[::-1]  # every workflow once, in order, without offsets

        found = await client.get("/durable/workflows", params={"workflow_id": "p-03"})
        assert [w["workflow_id"] for w in found.json()] == ["p-03"]
        none = await client.get(
            "/durable/workflows", params={"workflow_id": "p-03", "status": "ERROR"}
        )
        assert none.json() == []

        slim = (await client.get("/durable/workflows", params={"summary": True})).json()
        assert all(w["args"] is None and w["result"] is None for w in slim)
        full = (await client.get("/durable/workflows", params={"limit": 1})).json()
        assert full[0]["args"] == ["p-06"] and full[0]["result"] == "hello P-06"

        bad = await client.get("/durable/workflows", params={"after": "nonsense"})
        assert bad.status_code == 422
        assert "cursor" in bad.json()["detail"]


def test_engine_lists_by_cursor_and_counts(engine):
    for i in range(5):
        engine.start_workflow(flows.greet, str(i), workflow_id=f"c-{i}").result(timeout=30)
    page = engine.list_workflows(limit=2, newest_first=False)
    rest = engine.list_workflows(limit=10, newest_first=False, after=page[-1].cursor)
    assert [w.workflow_id for w in page + rest] == [f"c-{i}" for i in range(5)]
    assert engine.count_workflows() == 5
    assert engine.count_workflows(status="ERROR") == 0
    assert engine.count_workflows(name=page[0].name, status=["SUCCESS"]) == 5
    only = engine.list_workflows(workflow_ids=["c-3", "c-9"])
    assert [w.workflow_id for w in only] == ["c-3"]
