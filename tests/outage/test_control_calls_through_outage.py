"""fork_workflow and garbage_collect pause through a PostgreSQL outage like every other
statement (each runs in one transaction, retried whole) instead of failing with a raw driver
error. The server stopped is the suite's own throwaway cluster (tests.faultlab)."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid

import pytest

from durable_core import Engine, step, workflow

pytestmark = [pytest.mark.crash, pytest.mark.timeout(120)]

OUTAGE_SECONDS = 2.0


@step
def double(x: int) -> int:
    return 2 * x


@workflow
def doubled_twice(x: int) -> int:
    return double(double(x))


def test_fork_and_garbage_collect_wait_for_the_server(fault_db):
    engine = Engine(
        fault_db.url,
        executor_id=f"outage-{uuid.uuid4().hex[:8]}",
        application_version="test",
        run_scheduler=False,
    )
    engine.launch()
    try:
        source = engine.start_workflow(doubled_twice, 3)
        assert source.result(timeout=30) == 12
        outcomes: dict[str, object] = {}

        def call(name, fn):
            try:
                outcomes[name] = fn()
            except Exception as exc:  # what the test is about: no raw driver error
                outcomes[name] = exc

        fault_db.cluster.stop()
        began = time.monotonic()
        calls = [
            threading.Thread(
                target=call,
                args=("fork", lambda: engine.fork_workflow(source.workflow_id, 2).workflow_id),
            ),
            threading.Thread(
                target=call,
                args=("gc", lambda: engine.garbage_collect(dt.timedelta(days=365))),
            ),
        ]
        for thread in calls:
            thread.start()
        time.sleep(OUTAGE_SECONDS)
        fault_db.cluster.start()
        for thread in calls:
            thread.join(timeout=60)
        assert time.monotonic() - began >= OUTAGE_SECONDS
        assert isinstance(outcomes["fork"], str), outcomes["fork"]
        assert outcomes["gc"] == 0
        assert engine.retrieve_workflow(outcomes["fork"]).result(timeout=30) == 12
    finally:
        engine.shutdown(timeout=5)
