"""The app a real ``durable worker`` subprocess imports (as ``worker_app``, from this folder)."""

from __future__ import annotations

import time

from sqlalchemy import text

from durable_core import Queue, set_event, sql_session, step, transaction, workflow

jobs = Queue("cli_jobs")
other = Queue("cli_other")


@step
def double(x: int) -> int:
    return x * 2


@step
def slow(seconds: float) -> str:
    time.sleep(seconds)  # the workload itself: a step still running when SIGTERM arrives
    return "slept"


@workflow
def quick(x: int) -> int:
    return double(x)


@workflow
def long_running(seconds: float) -> str:
    set_event("started", True)
    return slow(seconds)


@transaction
async def record_async(note: str) -> int:
    session = sql_session()
    await session.execute(text("INSERT INTO worker_notes (note) VALUES (:n)"), {"n": note})
    return (await session.execute(text("SELECT COUNT(*) FROM worker_notes"))).scalar_one()


@transaction
def record_sync(note: str) -> int:
    session = sql_session()
    session.execute(text("INSERT INTO worker_notes (note) VALUES (:n)"), {"n": note})
    return session.execute(text("SELECT COUNT(*) FROM worker_notes")).scalar_one()


@workflow
async def note_async(note: str) -> int:
    return await record_async(note)


@workflow
def note_sync(note: str) -> int:
    return record_sync(note)
