"""The router's queue control (pause, resume, limits, reset) and executors endpoints."""
# No `from __future__ import annotations`, as in the other router tests.

import pytest

from durable_core import Client

from .conftest import make_app, make_durable, running

QUEUE = "api/orders"  # a "/" in the name routes too


@pytest.fixture
def durable(database_url, sync_app_engine):
    return make_durable(database_url, sync_app_engine)


async def test_pause_limits_reset_resume(durable, database_url):
    app = make_app(durable)
    async with running(app, durable) as client:
        with Client(database_url) as c:  # no process declares the queue: the work waits
            c.enqueue(QUEUE, "tests.fastapi.flows.greet", "ada")

        paused = await client.post(f"/durable/queues/{QUEUE}/pause")
        assert paused.status_code == 200, paused.text
        assert paused.json()["paused"] is True and paused.json()["enqueued"] == 1
        assert durable.engine.get_queue(QUEUE).paused

        limited = await client.patch(
            f"/durable/queues/{QUEUE}", json={"concurrency": 4, "rate_limit": [10, 1]}
        )
        assert limited.status_code == 200, limited.text
        body = limited.json()
        assert (body["concurrency"], body["rate_limit"]) == (4, [10, 1.0])
        assert sorted(body["overridden"]) == ["concurrency", "rate_limit"]
        lifted = await client.patch(f"/durable/queues/{QUEUE}", json={"concurrency": None})
        assert lifted.json()["concurrency"] is None
        assert lifted.json()["rate_limit"] == [10, 1.0]  # left out: unchanged

        shown = await client.get(f"/durable/queues/{QUEUE}")
        assert shown.json()["name"] == QUEUE and shown.json()["paused"] is True
        listed = {q["name"]: q for q in (await client.get("/durable/queues")).json()}
        assert listed[QUEUE]["enqueued"] == 1

        reset = (await client.post(f"/durable/queues/{QUEUE}/reset")).json()
        assert reset["overridden"] == [] and reset["paused"] is True
        resumed = (await client.post(f"/durable/queues/{QUEUE}/resume")).json()
        assert resumed["paused"] is False


async def test_bad_limits_are_422(durable):
    app = make_app(durable)
    async with running(app, durable) as client:
        for body in [{"concurrency": 0}, {"rate_limit": [0, 1]}, {"concurency": 2}, {}]:
            response = await client.patch(f"/durable/queues/{QUEUE}", json=body)
            assert response.status_code == 422, (body, response.text)
        assert durable.engine.get_queue(QUEUE).overridden == ()


async def test_queue_and_executor_endpoints_need_the_dependencies(durable):
    app = make_app(durable)
    async with running(app, durable) as client:
        anonymous = {"Authorization": ""}
        for method, path in [
            ("GET", "/durable/queues"),
            ("GET", f"/durable/queues/{QUEUE}"),
            ("POST", f"/durable/queues/{QUEUE}/pause"),
            ("POST", f"/durable/queues/{QUEUE}/resume"),
            ("POST", f"/durable/queues/{QUEUE}/reset"),
            ("PATCH", f"/durable/queues/{QUEUE}"),
            ("GET", "/durable/executors"),
        ]:
            response = await client.request(
                method, path, headers=anonymous, json={"concurrency": 1}
            )
            assert response.status_code == 401, path
        assert not durable.engine.get_queue(QUEUE).paused


async def test_executors(durable):
    app = make_app(durable)
    async with running(app, durable) as client:
        engine = durable.engine
        engine.store.heartbeat("api-dead", "v0", "old-host", 7, 10_000)
        engine.store.run(
            "UPDATE durable_executors SET heartbeat_at = %s WHERE executor_id = %s",
            (engine.store.now_ms() - 600_000, "api-dead"),
        )
        everyone = {e["executor_id"]: e for e in (await client.get("/durable/executors")).json()}
        me = everyone[engine.executor_id]
        assert me["live"] is True and me["application_version"] == engine.application_version
        assert everyone["api-dead"]["live"] is False
        assert everyone["api-dead"]["heartbeat_age"] >= 500
        dead = (await client.get("/durable/executors", params={"live": False})).json()
        assert [e["executor_id"] for e in dead] == ["api-dead"]
