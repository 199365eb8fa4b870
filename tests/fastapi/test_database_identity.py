"""Whether starts join the request's transaction is decided by asking both databases who
they are, and a start from an async endpoint never blocks the event loop."""
# No `from __future__ import annotations`: endpoints below annotate with a local `durable`.

import asyncio
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
from fastapi import HTTPException
from sqlalchemy import create_engine, text

from tests.conftest import drop_postgres_schema, make_postgres_url

from . import flows
from .conftest import make_app, make_durable, running


def _respelled(url: str) -> str:
    """The same PostgreSQL database under another host name (127.0.0.1 -> localhost)."""
    parts = urlsplit(url)
    netloc = parts.netloc.replace("127.0.0.1", "localhost")
    assert netloc != parts.netloc
    return urlunsplit(("postgresql+psycopg", netloc, parts.path, parts.query, parts.fragment))


def _app(durable):
    app = make_app(durable)

    @app.post("/orders/{order_id}")
    async def create(order_id: str, session: durable.SessionDep, fail: bool = False) -> dict:
        session.execute(text("INSERT INTO orders (id, note) VALUES (:id, 'r')"), {"id": order_id})
        handle = await durable.start_workflow(flows.greet, order_id, workflow_id=f"wf-{order_id}")
        if fail:
            raise HTTPException(400, detail="rejected after starting")
        return {"workflow_id": handle.workflow_id}

    return app


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_the_same_database_spelled_differently_is_transactional(database_url, caplog):
    app_engine = create_engine(_respelled(database_url))
    with app_engine.begin() as conn:
        conn.execute(text("CREATE TABLE orders (id VARCHAR(200) PRIMARY KEY, note TEXT)"))
    durable = make_durable(database_url, app_engine)
    app = _app(durable)
    caplog.set_level("INFO", logger="fastapi_durable")
    try:
        async with running(app, durable) as client:
            assert durable.transactional_enqueue
            assert "commit with the request's writes" in caplog.text
            rejected = await client.post("/orders/a2", params={"fail": True})
            assert rejected.status_code == 400
            assert durable.engine.list_workflows() == []  # rolled back with the request
            ok = await client.post("/orders/a1")
            assert ok.status_code == 200
            assert await durable.engine.retrieve_workflow("wf-a1").result_async() == "hello A1"
    finally:
        app_engine.dispose()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_another_schema_is_another_database(database_url, caplog):
    other, schema = make_postgres_url()
    app_engine = create_engine(_respelled(other))
    durable = make_durable(database_url, app_engine)
    caplog.set_level("INFO", logger="fastapi_durable")
    try:
        async with running(make_app(durable), durable):
            assert not durable.transactional_enqueue
            assert "is not the system database" in caplog.text
    finally:
        app_engine.dispose()
        drop_postgres_schema(schema)


def _hold_system_lock(database_url: str, seconds: float, locked: threading.Event) -> None:
    """Lock the system database's workflow table for ``seconds`` from another connection."""
    if database_url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(database_url.split("///", 1)[1], isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
    else:
        import psycopg

        from durable_core.store import parse_database_url

        conn = psycopg.connect(parse_database_url(database_url).libpq)
        conn.execute("LOCK TABLE durable_workflows IN ACCESS EXCLUSIVE MODE")
    locked.set()
    time.sleep(seconds)
    conn.rollback() if not database_url.startswith("sqlite") else conn.execute("ROLLBACK")
    conn.close()


async def test_a_stalled_system_database_does_not_block_the_loop(database_url, tmp_path):
    """An AsyncSession on another database: the start waits for the lock in a worker thread,
    not on the event loop (it blocked the loop for the whole stall: 2,013 ms measured)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    schema = None
    if database_url.startswith("sqlite"):
        app_url = f"sqlite+aiosqlite:///{tmp_path / 'app.sqlite3'}"
    else:
        other, schema = make_postgres_url()
        app_url = _respelled(other)
    app_engine = create_async_engine(app_url)
    async with app_engine.begin() as conn:
        await conn.execute(text("CREATE TABLE orders (id VARCHAR(200) PRIMARY KEY, note TEXT)"))
    durable = make_durable(database_url, app_engine)
    app = make_app(durable)

    @app.post("/orders/{order_id}")
    async def create(order_id: str, session: durable.SessionDep) -> dict:
        await session.execute(text("INSERT INTO orders (id) VALUES (:id)"), {"id": order_id})
        handle = await durable.start_workflow(flows.greet, order_id, workflow_id=f"wf-{order_id}")
        return {"workflow_id": handle.workflow_id}

    try:
        async with running(app, durable) as client:
            assert not durable.transactional_enqueue
            locked = threading.Event()
            holder = threading.Thread(target=_hold_system_lock, args=(database_url, 2.0, locked))
            holder.start()
            await asyncio.to_thread(locked.wait, 10)
            lags: list[float] = []
            stop = asyncio.Event()

            async def ticker() -> None:
                while not stop.is_set():
                    before = time.monotonic()
                    await asyncio.sleep(0.01)
                    lags.append(time.monotonic() - before - 0.01)

            ticking = asyncio.create_task(ticker())
            response = await client.post("/orders/o-1")
            stop.set()
            await ticking
            await asyncio.to_thread(holder.join, 10)
            assert response.status_code == 200
            assert max(lags) < 0.5, f"the loop stalled {max(lags) * 1000:.0f} ms"
    finally:
        await app_engine.dispose()
        if schema:
            drop_postgres_schema(schema)
