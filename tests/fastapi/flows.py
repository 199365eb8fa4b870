"""Workflows the FastAPI tests start; registered at import time like an app's own."""

from __future__ import annotations

import threading

from sqlalchemy import text

from durable_core import close_stream, recv, sql_session, step, transaction, workflow, write_stream

# Tests that need a workflow to stay PENDING set this only when they are done.
release = threading.Event()


@step
def shout(name: str) -> str:
    return name.upper()


@workflow
def greet(name: str) -> str:
    return f"hello {shout(name)}"


@transaction
def record_order(order_id: str) -> int:
    session = sql_session()
    session.execute(
        text("INSERT INTO orders (id, note) VALUES (:id, 'by workflow')"), {"id": order_id}
    )
    return session.execute(text("SELECT COUNT(*) FROM orders")).scalar_one()


@workflow
def process_order(order_id: str) -> str:
    record_order(order_id)
    return shout(order_id)


@transaction
async def record_order_async(order_id: str) -> int:
    session = sql_session()
    await session.execute(
        text("INSERT INTO orders (id, note) VALUES (:id, 'by async workflow')"), {"id": order_id}
    )
    return (await session.execute(text("SELECT COUNT(*) FROM orders"))).scalar_one()


@workflow
async def process_order_async(order_id: str) -> str:
    await record_order_async(order_id)
    return order_id.upper()


@workflow
def wait_for_go() -> str:
    message = recv("go", timeout=30)
    return f"got {message}"


@step
def produce(i: int) -> dict:
    return {"i": i, "square": i * i}


@workflow
def emit(n: int) -> int:
    for i in range(n):
        write_stream("progress", produce(i))
    close_stream("progress")
    return n


@workflow
def takes_anything(payload: object) -> str:
    return "ok"


@workflow
def emit_in_two_parts(first: int, second: int) -> int:
    """Writes ``first`` values, waits for a message on "more", then writes ``second`` more."""
    for i in range(first):
        write_stream("progress", produce(i))
    recv("more", timeout=60)
    for i in range(first, first + second):
        write_stream("progress", produce(i))
    close_stream("progress")
    return first + second


@workflow
def scheduled_note(scheduled_at, started_at, note: str = "") -> str:
    return f"{note}@{scheduled_at.isoformat()}"
