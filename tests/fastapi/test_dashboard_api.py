"""The dashboard's JSON (a workflow's page, the fleet) and the router's CSRF rule, on SQLite and
PostgreSQL, in process (the browser tests in test_dashboard_views.py drive the page itself)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.waiting import wait_for

from . import dashboard_app as demo

AUTH = (demo.USER, demo.PASSWORD)


@pytest.fixture
async def client(database_url):
    app, durable = demo.make_app(database_url)
    async with durable.lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", auth=AUTH, timeout=30
        ) as http:
            http.engine = durable.engine  # type: ignore[attr-defined]
            yield http


async def page_of(client, workflow_id: str) -> dict:
    response = await client.get("/durable/dashboard/workflow", params={"workflow_id": workflow_id})
    assert response.status_code == 200, response.text
    return response.json()


async def test_workflow_page_has_timeline_waits_retries_and_tracebacks(client):
    engine = client.engine
    order = await engine.start_workflow_async(demo.order, 2, workflow_id="o-2")
    payment = await engine.start_workflow_async(demo.payment, 3, workflow_id="p-3")
    await engine.start_workflow_async(demo.nap, 600, workflow_id="n-1")
    await engine.start_workflow_async(demo.approval, "r", workflow_id="a-1")
    await order.result_async(timeout=30)
    with pytest.raises(Exception, match="payment gateway refused"):
        await payment.result_async(timeout=30)
    wait_for(lambda: len(engine.list_steps("n-1")) == 2, 30, "the nap's sleep")
    wait_for(lambda: len(engine.list_steps("a-1")) == 2, 30, "the approval's event")
    await engine.send_async("a-1", "later", topic="other")

    order = await page_of(client, "o-2")
    kinds = [s["kind"] for s in order["steps"]]
    assert kinds == ["step", "step", "set_event", "stream", "stream", "stream", "child"]
    assert order["steps"][0]["duration_ms"] >= 20  # fetch sleeps 20 ms
    assert order["steps"][0]["result"] == 4
    child_step = order["steps"][-1]
    assert child_step["child_status"] == "SUCCESS"
    assert order["children"][0]["name"] == "dash.child"
    assert order["events"] == [{"step_id": 3, "key": "progress", "value": {"fetched": 2}}]
    assert order["streams"][0]["key"] == "log" and order["streams"][0]["closed"] is True
    assert [v["value"] for v in order["streams"][0]["values"]] == [
        "fetched 10",
        "calling the child",
    ]
    assert order["waiting"] is None and order["error"] is None

    payment = await page_of(client, "p-3")
    failed = payment["steps"][1]
    assert failed["attempts"] == 3
    assert "ConnectionError: payment gateway refused 3" in failed["error"]["traceback"]
    assert payment["error"]["type"] == "durable_core.errors.StepRetriesExceeded"
    assert "flaky_charge" in payment["error"]["traceback"]

    nap = await page_of(client, "n-1")
    assert nap["waiting"]["what"] == "sleep" and nap["waiting"]["until"]
    assert nap["steps"][1]["wait"]["until"] == nap["waiting"]["until"]

    approval = await page_of(client, "a-1")
    assert approval["waiting"]["step_id"] == 3 and approval["waiting"]["until"]
    assert "message" in approval["waiting"]["what"]
    assert approval["messages"][0]["topic"] == "other"
    assert approval["messages"][0]["consumed_at"] is None

    missing = await client.get("/durable/dashboard/workflow", params={"workflow_id": "nope"})
    assert missing.status_code == 404
    await engine.cancel_workflow_async("n-1")
    await engine.cancel_workflow_async("a-1")


async def test_waits_name_their_topic_or_event_and_retried_steps_their_attempts(client):
    engine = client.engine
    await engine.start_workflow_async(demo.approval, "r", workflow_id="a-2")
    await engine.start_workflow_async(demo.watcher, "a-2", workflow_id="w-2")
    wait_for(lambda: len(engine.store.load_steps("a-2")) == 3, 30, "the approval's recv mark")
    wait_for(lambda: len(engine.store.load_steps("w-2")) == 1, 30, "the watcher's mark")

    approval = await page_of(client, "a-2")
    waiting = approval["waiting"]
    assert waiting["what"] == "a message on topic 'approve'"
    assert (waiting["kind"], waiting["topic"], waiting["step_id"]) == ("recv", "approve", 3)
    assert waiting["until"]
    watcher = await page_of(client, "w-2")
    waiting = watcher["waiting"]
    assert waiting["what"] == "event 'verdict' of workflow a-2"
    assert (waiting["kind"], waiting["target_workflow_id"], waiting["key"]) == (
        "get_event",
        "a-2",
        "verdict",
    )
    assert waiting["until"]

    await engine.send_async("a-2", "yes", topic="approve")
    assert await engine.retrieve_workflow("a-2").result_async(timeout=30) == "r: yes"
    received = (await page_of(client, "a-2"))["steps"][2]["wait"]
    assert received["what"] == "a message on topic 'approve'" and received["outcome"] == "arrived"
    await engine.cancel_workflow_async("w-2")

    handle = await engine.start_workflow_async(demo.retried, uuid.uuid4().hex)
    assert await handle.result_async(timeout=30) == "fetched"
    [shaky] = (await page_of(client, handle.workflow_id))["steps"]
    assert shaky["attempts"] == 3 and shaky["error"] is None
    steps = (await client.get(f"/durable/workflows/{handle.workflow_id}/steps")).json()
    assert [s["attempts"] for s in steps] == [3]
    first_try = (await page_of(client, "a-2"))["steps"][0]
    assert first_try["attempts"] == 1


async def test_fleet_shows_queue_depth_limits_executors_and_schedules(client):
    engine = client.engine
    await demo.backfill.enqueue_many_async(demo.backfill_item, [(i,) for i in range(25)])
    fleet = (await client.get("/durable/dashboard/fleet")).json()
    queues = {q["name"]: q for q in fleet["queues"]}
    assert queues["dash_backfill"]["enqueued"] == 25
    assert queues["dash_backfill"]["oldest_ready_age_s"] >= 0
    orders = queues["dash_orders"]
    assert (orders["concurrency"], orders["worker_concurrency"]) == (4, 2)
    assert orders["rate_limit"] == {"count": 50, "seconds": 1.0}
    assert orders["enqueued"] == 0 and orders["oldest_ready_age_s"] is None
    mine = [e for e in fleet["executors"] if e["executor_id"] == engine.executor_id]
    assert mine and mine[0]["live"] and mine[0]["this_process"]
    nightly = [s for s in fleet["schedules"] if s["name"] == "dash.nightly"]
    assert (
        nightly
        and nightly[0]["cron"] == "0 3 * * *"
        and nightly[0]["next"].endswith("03:00:00+00:00")
    )
    assert "dash.order" in fleet["workflow_names"]


async def test_browser_posts_without_the_action_header_are_refused(client):
    engine = client.engine
    await engine.start_workflow_async(demo.approval, "x", workflow_id="csrf-1")
    url = "/durable/workflows/csrf-1/cancel"
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        forged = await client.post(url, headers=headers)
        assert forged.status_code == 403, headers
        assert "X-Durable-Action" in forged.json()["detail"]
    assert (await engine.get_workflow_status_async("csrf-1")).status == "PENDING"
    fork = await client.post(
        "/durable/workflows/csrf-1/fork",
        json={"start_step": 1},
        headers={"Origin": "https://evil.example"},
    )
    assert fork.status_code == 403
    # The dashboard's own fetch, and a client that is not a browser, act.
    done = await client.post(url, headers={"Origin": "http://test", "X-Durable-Action": "1"})
    assert done.status_code == 200 and done.json()["status"] == "CANCELLED"
    again = await client.post("/durable/workflows/csrf-1/resume")
    assert again.status_code == 200
    # GETs are never refused.
    assert (
        await client.get(url.replace("/cancel", ""), headers={"Origin": "x"})
    ).status_code == 200
    await engine.cancel_workflow_async("csrf-1")
