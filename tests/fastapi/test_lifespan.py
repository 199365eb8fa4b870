"""The lifespan launches and shuts down the engine; EngineDep and executor IDs."""
# No `from __future__ import annotations`: endpoints below annotate with a local `durable`.

import contextlib
import os

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from durable_core import Engine
from durable_core.errors import EngineAlreadyRunning, EngineNotRunning
from fastapi_durable import Durable

from . import flows
from .conftest import make_app, make_durable, running


async def test_lifespan_runs_engine_for_endpoints(database_url, sync_app_engine):
    durable = make_durable(database_url, sync_app_engine)
    app = make_app(durable)

    @app.post("/greet/{name}")
    async def start(name: str, engine: durable.EngineDep) -> dict:
        handle = engine.start_workflow(flows.greet, name)
        return {"workflow_id": handle.workflow_id, "result": await handle.result_async()}

    async with running(app, durable) as client:
        response = await client.post("/greet/ada")
        assert response.status_code == 200
        assert response.json()["result"] == "hello ADA"
        engine = durable.engine
        assert engine.launched
    assert not engine.launched  # shut down when the lifespan exits


async def test_lifespan_composes_inside_the_apps_own(database_url, sync_app_engine):
    durable = make_durable(database_url, sync_app_engine)
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        events.append("app up")
        async with durable.lifespan(app):
            events.append(f"engine launched={durable.engine.launched}")
            yield
        events.append(f"engine launched={durable.engine.launched}")

    app = FastAPI(lifespan=lifespan)
    from fastapi.testclient import TestClient

    @app.get("/ok")
    def ok(engine: durable.EngineDep) -> str:
        return engine.start_workflow(flows.greet, "x").result(timeout=10)

    with TestClient(app) as client:
        assert client.get("/ok").json() == "hello X"
    assert events == ["app up", "engine launched=True", "engine launched=False"]


async def test_engine_dep_without_lifespan_is_a_clear_error(database_url, sync_app_engine):
    durable = make_durable(database_url, sync_app_engine)
    with pytest.raises(EngineNotRunning, match="lifespan"):
        durable.get_engine()


async def test_use_engine_while_the_lifespan_runs_is_a_clear_error(database_url, sync_app_engine):
    durable = make_durable(database_url, sync_app_engine)
    app = make_app(durable)
    async with running(app, durable):
        with pytest.raises(EngineAlreadyRunning, match="lifespan is not running"):
            durable.use_engine(Engine)
        assert durable.engine.launched  # the running engine is left as it was


async def test_every_serving_process_gets_its_own_executor_id(
    database_url, sync_app_engine, monkeypatch
):
    monkeypatch.delenv("DURABLE_EXECUTOR_ID", raising=False)
    first = make_durable(database_url, sync_app_engine)
    second = make_durable(database_url, sync_app_engine)
    assert first.engine.executor_id != second.engine.executor_id
    assert str(os.getpid()) in first.engine.executor_id
    built_in_master = first.engine.executor_id
    # A pre-forking server built `first` in its master; the worker has another PID.
    monkeypatch.setattr(os, "getpid", lambda: 999_999_991)
    async with first.lifespan(None):
        assert first.engine.executor_id != built_in_master
        assert "999999991" in first.engine.executor_id


async def test_lifespan_can_run_twice(database_url, sync_app_engine):
    durable = make_durable(database_url, sync_app_engine)
    for name in ("one", "two"):
        async with durable.lifespan(None):
            handle = durable.engine.start_workflow(flows.greet, name)
            assert await handle.result_async() == f"hello {name.upper()}"


def test_durable_rejects_engine_options_it_owns(database_url):
    with pytest.raises(TypeError, match="app_engine"):
        Durable(database_url=database_url, app_database="sqlite:///x.sqlite3")


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_the_default_app_engine_lets_a_bursts_connections_go(database_url):
    """Without an app_engine, Durable's own SQLAlchemy pool keeps 2 idle connections, not
    every connection a burst of requests opened (it kept 5 + 10 before)."""
    import asyncio

    from fastapi_durable import Durable

    durable = Durable(database_url=database_url, suspend_threshold=0.5, shutdown_timeout=5)
    app = make_app(durable)

    @app.get("/slow")
    def slow(session: durable.SessionDep) -> dict:
        return {"n": session.execute(text("SELECT 1 FROM pg_sleep(0.2)")).scalar_one()}

    async with running(app, durable) as client:
        answers = await asyncio.gather(*(client.get("/slow") for _ in range(12)))
        assert all(a.status_code == 200 for a in answers)
        pool = durable.app_engine.pool
        assert pool.checkedout() == 0
        assert pool.checkedin() <= 2


def test_the_process_exits_promptly_after_the_lifespan_with_a_step_running(database_url):
    """The interpreter used to wait for the pool thread of a step still running after the
    lifespan's shutdown timeout (27.5 s seen); the workflow is left for recovery instead."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    began = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "tests.fastapi.run_lifespan_exit", database_url],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.monotonic() - began
    assert run.returncode == 0, run.stdout + run.stderr
    assert "lifespan exited" in run.stdout
    assert took < 30, f"the process took {took:.1f} s to exit (the step sleeps 60 s)"
    assert "Traceback" not in run.stderr, run.stderr
