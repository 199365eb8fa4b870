"""GET /metrics on the router: Prometheus text with this process's counts and the backlog."""
# No `from __future__ import annotations`: like the other FastAPI tests.

import asyncio
import time

import pytest

from tests.ops.test_metrics import delta, parse

from . import flows
from .conftest import make_app, make_durable

pytest.importorskip("prometheus_client")


@pytest.fixture
def durable(database_url, sync_app_engine):
    return make_durable(database_url, sync_app_engine)


async def test_metrics_route_counts_a_known_workload(durable):
    from .conftest import running

    app = make_app(durable)
    async with running(app, durable) as client:
        first = await client.get("/durable/metrics")
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/plain")
        for n in range(2):
            await durable.engine.start_workflow(flows.greet, f"n{n}").result_async()
        name = "tests.fastapi.flows.greet"
        key = f'durable_workflows_finished_total{{name="{name}",status="SUCCESS"}}'
        # result() returns once the outcome is stored; the worker thread counts it just after.
        deadline = time.monotonic() + 10
        while True:
            after = parse((await client.get("/durable/metrics")).text)
            if delta(parse(first.text), after, key) >= 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        assert delta(parse(first.text), after, key) == 2
        assert "durable_database_roundtrip_seconds" in after
        # The route sits behind the router's dependencies like every other.
        del client.headers["Authorization"]
        assert (await client.get("/durable/metrics")).status_code == 401


async def test_liveness_and_readiness(durable):
    from .conftest import running

    app = make_app(durable)
    async with running(app, durable) as client:
        live = await client.get("/durable/health/live")
        assert live.status_code == 200 and live.json() == {"status": "ok"}
        ready = await client.get("/durable/health/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["schema"]["ok"] is True
        # A schema this release does not understand: not ready (alive all the same).
        durable.engine.store.run("INSERT INTO durable_schema (version) VALUES (999)")
        try:
            unready = await client.get("/durable/health/ready")
            assert unready.status_code == 503
            assert unready.json()["checks"]["schema"]["ok"] is False
            assert (await client.get("/durable/health/live")).status_code == 200
        finally:
            durable.engine.store.run("DELETE FROM durable_schema WHERE version = 999")
