"""run_in_caller: sync workflows run in the thread that drives the engine."""

from __future__ import annotations

import threading

import pytest

from durable_core import Queue, sleep, step, workflow
from durable_core.testing import TestEngine

THREADS: list[str] = []
work = Queue("tk-caller")


@step
def where() -> str:
    THREADS.append(threading.current_thread().name)
    return threading.current_thread().name


@workflow
def napper() -> str:
    first = where()
    sleep(3600)
    return first + "|" + where()


@pytest.fixture
def caller_engine(test_engine_url):
    with TestEngine(test_engine_url, schema_prefix="testing_", run_in_caller=True) as engine:
        yield engine


def test_started_enqueued_and_woken_workflows_run_in_the_callers_thread(caller_engine):
    THREADS.clear()
    me = threading.current_thread().name
    started = caller_engine.start_workflow(napper)
    queued = work.enqueue(napper)
    assert THREADS == []  # nothing runs until the caller drives it
    caller_engine.run_until_idle()  # runs both, skips the hour, runs both again
    assert started.status().result == f"{me}|{me}"
    assert queued.status().result == f"{me}|{me}"
    assert set(THREADS) == {me}


def test_result_runs_the_work_in_the_caller(caller_engine):
    handle = caller_engine.start_workflow(napper)
    me = threading.current_thread().name
    assert handle.result(timeout=10) == f"{me}|{me}"


def test_without_auto_advance_result_runs_but_does_not_skip_time(test_engine_url):
    with TestEngine(
        test_engine_url, schema_prefix="testing_", run_in_caller=True, auto_advance=False
    ) as engine:
        handle = engine.start_workflow(napper)
        with pytest.raises(TimeoutError):
            handle.result(timeout=0.2)
        assert len(engine.list_steps(handle.workflow_id)) == 2  # ran up to the sleep
        engine.advance(3600)
        assert handle.result(timeout=10).count("|") == 1
