"""The Idempotency-Key header as the workflow ID; bad keys and unencodable bodies are 422."""
# No `from __future__ import annotations`: endpoints below annotate with a local `durable`.

from typing import Annotated

import pydantic

from . import flows
from .conftest import make_app, make_durable, running


class Point:
    """An app type that a JSON serializer cannot store."""

    def __init__(self, text: str):
        self.x, self.y = (float(v) for v in text.split(","))


class Order(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
    item: str
    deliver_to: Annotated[Point, pydantic.BeforeValidator(Point)]


def _app(database_url, sync_app_engine):
    durable = make_durable(database_url, sync_app_engine)
    app = make_app(durable)

    @app.post("/greetings", status_code=202)
    async def create(name: str, key: durable.IdempotencyKeyDep) -> dict:
        handle = await durable.start_workflow(flows.greet, name, workflow_id=key)
        return {"workflow_id": handle.workflow_id}

    @app.post("/orders")
    async def order(order: Order, key: durable.IdempotencyKeyDep) -> dict:
        # deliver_to holds a Point, which the JSON serializer cannot store: 422 naming it.
        handle = await durable.start_workflow(flows.takes_anything, payload=order, workflow_id=key)
        return {"workflow_id": handle.workflow_id}

    return durable, app


async def test_a_retried_post_starts_no_second_workflow(database_url, sync_app_engine):
    durable, app = _app(database_url, sync_app_engine)
    async with running(app, durable) as client:
        headers = {"Idempotency-Key": "order-7f3a"}
        first = await client.post("/greetings", params={"name": "ada"}, headers=headers)
        second = await client.post("/greetings", params={"name": "ada"}, headers=headers)
        assert first.status_code == second.status_code == 202
        assert first.json() == second.json() == {"workflow_id": "order-7f3a"}
        assert len(durable.engine.list_workflows()) == 1
        assert await durable.engine.retrieve_workflow("order-7f3a").result_async() == "hello ADA"

        # Without the header every request is a new workflow.
        a = await client.post("/greetings", params={"name": "x"})
        b = await client.post("/greetings", params={"name": "x"})
        assert a.json()["workflow_id"] != b.json()["workflow_id"]


async def test_malformed_keys_are_422_with_a_message(database_url, sync_app_engine):
    durable, app = _app(database_url, sync_app_engine)
    async with running(app, durable) as client:
        too_long = await client.post(
            "/greetings", params={"name": "a"}, headers={"Idempotency-Key": "k" * 256}
        )
        assert too_long.status_code == 422
        assert "256 characters" in too_long.json()["detail"]
        assert "255" in too_long.json()["detail"]

        control = await client.post(
            "/greetings", params={"name": "a"}, headers={"Idempotency-Key": "abc\tdef"}
        )
        assert control.status_code == 422
        assert "printable ASCII" in control.json()["detail"]
        assert "U+0009" in control.json()["detail"]

        # "café" sent as UTF-8 arrives as latin-1 text ("cafÃ©"): refused, never stored garbled.
        accented = await client.post(
            "/greetings", params={"name": "a"}, headers={"Idempotency-Key": "café".encode()}
        )
        assert accented.status_code == 422
        assert "printable ASCII" in accented.json()["detail"]
        assert durable.engine.list_workflows() == []

        ok = await client.post(
            "/greetings", params={"name": "a"}, headers={"Idempotency-Key": "k" * 255}
        )
        assert ok.status_code == 202
        assert [w.workflow_id for w in durable.engine.list_workflows()] == ["k" * 255]


async def test_a_body_that_cannot_be_a_workflow_input_is_422_naming_the_field(
    database_url, sync_app_engine
):
    durable, app = _app(database_url, sync_app_engine)
    async with running(app, durable) as client:
        response = await client.post(
            "/orders",
            json={"item": "tea", "deliver_to": "1.5,2"},
            headers={"Idempotency-Key": "o-1"},
        )
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert "'payload'" in detail
        assert "Point" in detail
        assert durable.engine.list_workflows() == []


def _counting_app(database_url, sync_app_engine):
    """An endpoint that counts its own runs, can be held open, and fails when told to."""
    import asyncio

    durable = make_durable(database_url, sync_app_engine)
    app = make_app(durable)
    state = {"runs": 0, "hold": None, "entered": asyncio.Event(), "fail_next": False}

    @app.post("/payments")
    async def pay(body: dict, key: durable.IdempotencyKeyDep) -> dict:
        state["runs"] += 1
        state["entered"].set()
        if state["hold"] is not None:
            await state["hold"].wait()
        if state["fail_next"]:
            state["fail_next"] = False
            raise RuntimeError("payment provider down")
        handle = await durable.start_workflow(flows.greet, body["name"], workflow_id=key)
        return {"workflow_id": handle.workflow_id, "replayed": key.replayed}

    return durable, app, state


async def test_a_key_reused_with_another_body_is_422_and_runs_nothing(
    database_url, sync_app_engine
):
    durable, app, state = _counting_app(database_url, sync_app_engine)
    async with running(app, durable) as client:
        key = {"Idempotency-Key": "pay-1"}
        first = await client.post("/payments", json={"name": "ada"}, headers=key)
        assert first.status_code == 200
        assert first.json() == {"workflow_id": "pay-1", "replayed": False}
        other = await client.post("/payments", json={"name": "bob"}, headers=key)
        assert other.status_code == 422
        assert "different request" in other.json()["detail"]
        assert state["runs"] == 1  # the endpoint (and its own writes) did not run again
        again = await client.post("/payments", json={"name": "ada"}, headers=key)
        assert again.status_code == 200
        assert again.json() == {"workflow_id": "pay-1", "replayed": True}
        assert [w.workflow_id for w in durable.engine.list_workflows()] == ["pay-1"]
        assert await durable.engine.retrieve_workflow("pay-1").result_async() == "hello ADA"


async def test_a_retry_while_the_first_request_runs_is_409(database_url, sync_app_engine):
    import asyncio

    durable, app, state = _counting_app(database_url, sync_app_engine)
    state["hold"] = asyncio.Event()
    async with running(app, durable) as client:
        key = {"Idempotency-Key": "pay-2"}
        first = asyncio.create_task(client.post("/payments", json={"name": "ada"}, headers=key))
        await asyncio.wait_for(state["entered"].wait(), 10)
        second = await client.post("/payments", json={"name": "ada"}, headers=key)
        assert second.status_code == 409
        assert second.headers["Retry-After"] == "1"
        assert "still being processed" in second.json()["detail"]
        state["hold"].set()
        assert (await first).status_code == 200
        assert state["runs"] == 1


async def test_a_failed_request_frees_its_key_for_the_retry(database_url, sync_app_engine):
    import httpx

    durable, app, state = _counting_app(database_url, sync_app_engine)
    state["fail_next"] = True
    async with running(app, durable):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            key = {"Idempotency-Key": "pay-3"}
            failed = await client.post("/payments", json={"name": "ada"}, headers=key)
            assert failed.status_code == 500
            retried = await client.post("/payments", json={"name": "ada"}, headers=key)
            assert retried.status_code == 200
            assert retried.json() == {"workflow_id": "pay-3", "replayed": False}
            assert state["runs"] == 2


async def test_a_key_whose_request_died_is_taken_over_after_the_timeout(
    database_url, sync_app_engine
):
    from fastapi_durable._idempotency import request_fingerprint

    durable, app, state = _counting_app(database_url, sync_app_engine)
    async with running(app, durable) as client:
        store, now = durable.engine.store, durable.engine.clock.now_ms()
        body = b'{"name":"ada"}'
        print_ = request_fingerprint("POST", "/payments", "", body)
        # A process reserved the key 2 minutes ago and died before finishing the request.
        assert store.reserve_request_key("pay-4", print_, now - 120_000, 0) == "reserved"
        headers = {"Idempotency-Key": "pay-4", "Content-Type": "application/json"}
        taken = await client.post("/payments", content=body, headers=headers)
        assert taken.status_code == 200, taken.text
        assert state["runs"] == 1
