"""SessionDep (sync and async), @transaction steps on the app engine, transactional enqueue."""
# No `from __future__ import annotations`: endpoints below annotate with a local `durable`.

import uuid

import pytest
from fastapi import HTTPException
from sqlalchemy import text

from durable_core import Queue
from durable_core.errors import AsyncCallRequired

from . import flows
from .conftest import count, make_app, make_durable, running

orders_queue = Queue("fastapi_test_orders")


@pytest.fixture(params=["sync", "async"])
def session_kind(request):
    return request.param


@pytest.fixture
def app_engine(session_kind, sync_app_engine, request):
    if session_kind == "sync":
        return sync_app_engine
    return request.getfixturevalue("async_app_engine")


def _app(database_url, app_engine, session_kind):
    durable = make_durable(database_url, app_engine)
    app = make_app(durable)
    is_async = session_kind == "async"

    async def execute(session, sql, **params):
        result = session.execute(text(sql), params)
        return await result if is_async else result

    @app.post("/orders/{order_id}")
    async def create(order_id: str, session: durable.SessionDep, fail: bool = False) -> dict:
        await execute(
            session, "INSERT INTO orders (id, note) VALUES (:id, 'by request')", id=order_id
        )
        handle = await durable.start_workflow(flows.greet, order_id, workflow_id=f"wf-{order_id}")
        if fail:
            raise HTTPException(400, detail="rejected after starting")
        return {"workflow_id": handle.workflow_id}

    @app.post("/queued/{order_id}")
    async def enqueue(order_id: str, session: durable.SessionDep, fail: bool = False) -> dict:
        await execute(session, "INSERT INTO orders (id, note) VALUES (:id, 'queued')", id=order_id)
        handle = await durable.enqueue(
            orders_queue, flows.greet, order_id, workflow_id=f"q-{order_id}"
        )
        if fail:
            raise RuntimeError("boom")
        return {"workflow_id": handle.workflow_id}

    return durable, app


async def test_session_commits_on_return_and_rolls_back_on_error(
    database_url, app_engine, session_kind, sync_app_engine
):
    durable, app = _app(database_url, app_engine, session_kind)
    async with running(app, durable) as client:
        ok = await client.post("/orders/a1")
        assert ok.status_code == 200
        assert count(sync_app_engine, "SELECT COUNT(*) FROM orders WHERE id = 'a1'") == 1
        # The workflow committed with the row and then ran.
        assert await durable.engine.retrieve_workflow("wf-a1").result_async() == "hello A1"

        rejected = await client.post("/orders/a2", params={"fail": True})
        assert rejected.status_code == 400
        assert count(sync_app_engine, "SELECT COUNT(*) FROM orders WHERE id = 'a2'") == 0
        # Transactional enqueue: the workflow was rolled back with the request's writes.
        assert [w.workflow_id for w in durable.engine.list_workflows()] == ["wf-a1"]


async def test_enqueue_joins_the_request_transaction(
    database_url, app_engine, session_kind, sync_app_engine
):
    durable, app = _app(database_url, app_engine, session_kind)
    async with running(app, durable) as client:
        with pytest.raises(RuntimeError, match="boom"):
            await client.post("/queued/b1", params={"fail": True})
        assert count(sync_app_engine, "SELECT COUNT(*) FROM orders") == 0
        assert durable.engine.list_workflows() == []

        ok = await client.post("/queued/b2")
        assert ok.json() == {"workflow_id": "q-b2"}
        assert await durable.engine.retrieve_workflow("q-b2").result_async() == "hello B2"
        assert count(sync_app_engine, "SELECT COUNT(*) FROM orders WHERE id = 'b2'") == 1


async def test_sync_engine_start_in_sync_endpoint_joins_the_transaction(
    database_url, sync_app_engine
):
    durable = make_durable(database_url, sync_app_engine)
    app = make_app(durable)

    @app.post("/plain/{order_id}")
    def create(
        order_id: str, engine: durable.EngineDep, session: durable.SessionDep, fail: bool = False
    ) -> str:
        session.execute(text("INSERT INTO orders (id) VALUES (:id)"), {"id": order_id})
        handle = engine.start_workflow(flows.greet, order_id, workflow_id=f"p-{order_id}")
        if fail:
            raise HTTPException(409, detail="no")
        return handle.workflow_id

    async with running(app, durable) as client:
        assert (await client.post("/plain/c1", params={"fail": True})).status_code == 409
        assert (await client.post("/plain/c2")).json() == "p-c2"
        assert [w.workflow_id for w in durable.engine.list_workflows()] == ["p-c2"]
        assert await durable.engine.retrieve_workflow("p-c2").result_async() == "hello C2"
        assert count(sync_app_engine, "SELECT COUNT(*) FROM orders") == 1


async def test_async_session_refuses_a_start_that_cannot_join_it(database_url, async_app_engine):
    durable = make_durable(database_url, async_app_engine)
    app = make_app(durable)

    @app.post("/wrong")
    async def wrong(engine: durable.EngineDep, session: durable.SessionDep) -> str:
        return engine.start_workflow(flows.greet, "x").workflow_id

    async with running(app, durable) as client:
        with pytest.raises(AsyncCallRequired, match="await durable.start_workflow"):
            await client.post("/wrong")
        assert durable.engine.list_workflows() == []


async def test_transaction_steps_run_on_the_app_engine_exactly_once(
    database_url, app_engine, session_kind, sync_app_engine
):
    durable = make_durable(database_url, app_engine)
    app = make_app(durable)
    workflow = flows.process_order if session_kind == "sync" else flows.process_order_async
    order_id = f"o-{uuid.uuid4().hex[:6]}"

    @app.post("/process")
    async def process(engine: durable.EngineDep) -> dict:
        handle = engine.start_workflow(workflow, order_id, workflow_id=order_id)
        return {"result": await handle.result_async()}

    async with running(app, durable) as client:
        assert (await client.post("/process")).json() == {"result": order_id.upper()}
        # The same workflow ID again: nothing runs twice.
        assert (await client.post("/process")).json() == {"result": order_id.upper()}
        # A fork from step 2 replays the recorded transaction instead of writing again.
        forked = durable.engine.fork_workflow(order_id, 2)
        assert await forked.result_async() == order_id.upper()
    assert count(sync_app_engine, "SELECT COUNT(*) FROM orders WHERE id = :i", i=order_id) == 1
    assert (
        count(
            sync_app_engine,
            "SELECT COUNT(*) FROM durable_transaction_outputs WHERE workflow_id = :i",
            i=order_id,
        )
        == 1
    )
