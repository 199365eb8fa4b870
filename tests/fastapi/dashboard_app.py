"""A FastAPI app whose workflows exercise every part of the dashboard: steps with durations,
a step whose retries ran out (with its traceback), waits (recv, sleep), events, messages,
streams, a child workflow, a queue with limits, a queue that holds a backlog nobody serves,
a schedule. The browser tests serve it under uvicorn; ``python -m tests.fastapi.dashboard_app
URL`` serves it for a person to look at."""

from __future__ import annotations

import secrets
import time
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from durable_core import (
    Queue,
    close_stream,
    get_event,
    recv,
    scheduled,
    set_event,
    sleep,
    step,
    workflow,
    write_stream,
)
from fastapi_durable import Durable

USER, PASSWORD = "admin", "dashboard"
#: Served by the app: its limits show on the queues page.
orders = Queue("dash_orders", concurrency=4, worker_concurrency=2, rate_limit=(50, 1.0))
#: Not served by the app: its 10,000 ENQUEUED workflows are the backlog the list pages through.
backfill = Queue("dash_backfill")


@step
def fetch(n: int) -> int:
    time.sleep(0.02)
    return n * 2


@step(retries=2, retry_delay=0.01, backoff=1.0)
def flaky_charge(amount: int) -> str:
    raise ConnectionError(f"payment gateway refused {amount}")


@workflow(name="dash.child")
def child(n: int) -> int:
    return fetch(n) + 1


@workflow(name="dash.order")
def order(n: int) -> dict:
    total = fetch(n) + fetch(n + 1)
    set_event("progress", {"fetched": 2})
    write_stream("log", f"fetched {total}")
    write_stream("log", "calling the child")
    close_stream("log")
    return {"total": total, "child": child(n)}


@workflow(name="dash.payment")
def payment(amount: int) -> str:
    fetch(amount)
    return flaky_charge(amount)


@workflow(name="dash.approval")
def approval(request: str) -> str:
    fetch(1)
    set_event("state", "waiting for approval")
    answer = recv("approve", timeout=3600)
    return f"{request}: {answer}"


@workflow(name="dash.nap")
def nap(seconds: float) -> str:
    fetch(3)
    sleep(seconds)
    return "rested"


@workflow(name="dash.backfill")
def backfill_item(n: int) -> int:
    return n


@scheduled("0 3 * * *")
@workflow(name="dash.nightly")
def nightly(scheduled_at, started_at) -> str:
    return "ran"


@workflow(name="dash.report")
def report(scheduled_at, started_at, title: str = "daily") -> str:
    """Started by schedules created at run time (the browser test creates one)."""
    return f"{title} report for {scheduled_at}"


@workflow(name="dash.watcher")
def watcher(target: str) -> object:
    return get_event(target, "verdict", timeout=3600)


_SHAKY: dict[str, int] = {}


@step(retries=3, retry_delay=0.01, backoff=1.0)
def shaky_fetch(key: str) -> str:
    _SHAKY[key] = _SHAKY.get(key, 0) + 1
    if _SHAKY[key] <= 2:
        raise ConnectionError(f"flaky upstream ({_SHAKY[key]})")
    return "fetched"


@workflow(name="dash.retried")
def retried(key: str) -> str:
    return shaky_fetch(key)


basic = HTTPBasic(realm="durable")


def require_admin(credentials: Annotated[HTTPBasicCredentials, Depends(basic)]) -> None:
    good = secrets.compare_digest(credentials.username, USER) and secrets.compare_digest(
        credentials.password, PASSWORD
    )
    if not good:
        raise HTTPException(401, "wrong credentials", headers={"WWW-Authenticate": "Basic"})


def make_app(database_url: str) -> tuple[FastAPI, Durable]:
    durable = Durable(
        database_url=database_url,
        queues=["dash_orders"],
        run_scheduler=False,
        suspend_threshold=0.5,
        shutdown_timeout=5,
    )
    app = FastAPI(lifespan=durable.lifespan, exception_handlers=durable.exception_handlers)
    app.include_router(durable.router(dependencies=[Depends(require_admin)]), prefix="/durable")
    return app, durable


if __name__ == "__main__":  # pragma: no cover - a manual demo
    import sys

    import uvicorn

    application, _ = make_app(sys.argv[1] if len(sys.argv) > 1 else "sqlite:///dashboard.sqlite3")
    uvicorn.run(application, host="127.0.0.1", port=8000)
