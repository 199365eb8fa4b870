"""Losing the database connection mid-run pauses work; nothing fails and nothing is lost."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

from durable_core import recv, step, workflow
from tests.conftest import PG_URL

GATES: dict[str, threading.Event] = {}


@step
def wait_for_gate(key: str) -> str:
    GATES[key].wait(20)
    return "through"


@step
def after(key: str) -> str:
    return f"after-{key}"


@workflow
def gated_then_more(key: str) -> list:
    return [wait_for_gate(key), after(key), recv("go", timeout=20)]


def kill_connections(application_name: str) -> int:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchall()
    return len(rows)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_connections_killed_mid_workflow(engine):
    key = str(uuid.uuid4())
    GATES[key] = threading.Event()
    handle = engine.start_workflow(gated_then_more, key)
    deadline = time.monotonic() + 10
    while not engine.inflight and time.monotonic() < deadline:
        time.sleep(0.02)
    # Every connection of this engine dies: the pool's, and the LISTEN connection.
    assert kill_connections(f"durable {engine.executor_id}") >= 2
    GATES[key].set()
    # The next checkpoints meet dead connections, reconnect and continue.
    deadline = time.monotonic() + 10
    while len(engine.list_steps(handle.workflow_id)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    engine.send(handle.workflow_id, "now", topic="go")
    assert handle.result(timeout=20) == ["through", f"after-{key}", "now"]
    assert handle.status().status == "SUCCESS"
