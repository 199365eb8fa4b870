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
