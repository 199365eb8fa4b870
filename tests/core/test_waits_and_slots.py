"""Held sleeps, the hold settings, and queue slots of waiting workflows.

A sync workflow with a long history (``Engine(hold_history=...)``) is held through a durable
``sleep`` that ends within ``hold_seconds``, as through a ``recv``: it wakes without replaying
its body. A dequeued workflow counts against its queue's ``worker_concurrency`` until it
ends, whether it waits held or parked (as it counts against ``concurrency``, by its PENDING
row): before, a parked one gave its slot back and the next one started beside it.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid

import pytest

from durable_core import Engine, Queue, recv, set_default_engine, sleep, step, workflow, workflow_id
from durable_core.errors import ConfigurationError

body_runs: collections.Counter[str] = collections.Counter()
spans: dict[str, list[float]] = {}
lock = threading.Lock()

one_at_a_time = Queue("tests-one-at-a-time", worker_concurrency=1)
many = Queue("tests-many-slots")


@step
def nap_tick(i: int) -> int:
    return i


@workflow
def nap_loop(rounds: int) -> int:
    body_runs[workflow_id()] += 1  # code outside steps: runs again at every replay
    total = 0
    for i in range(rounds):
        total += nap_tick(i)
        sleep(0.05)
    return total


@workflow
def recv_loop(rounds: int) -> int:
    body_runs[workflow_id()] += 1
    for i in range(rounds):
        nap_tick(i)
        recv("go", timeout=0.05)
    return rounds


@step
def stamp(label: str, what: str) -> None:
    with lock:
        spans.setdefault(label, []).append(time.monotonic())


@workflow
def napper(label: str) -> str:
    stamp(label, "start")
    sleep(1.5)  # past the suspend threshold: parks (hold_history is out of reach)
    stamp(label, "end")
    return label


def _engine(database_url: str, **options) -> Engine:
    options.setdefault("suspend_threshold", 0.0)
    return Engine(
        database_url,
        executor_id=f"slots-{uuid.uuid4().hex[:6]}",
        run_scheduler=False,
        max_workers=8,
        **options,
    )


def test_a_long_history_is_held_through_a_sleep(database_url):
    with _engine(database_url, hold_history=2) as engine:  # tick + sleep
        handle = engine.start_workflow(nap_loop, 6)
        assert handle.result(timeout=30) == sum(range(6))
        # One run from the start, one replay after the first (cold) park, never again: each
        # later sleep was held (before: parked, a replay at each of the 6 wake-ups).
        assert body_runs[handle.workflow_id] == 2
        assert engine.parking.held_warm == 0


def test_hold_seconds_zero_parks_every_wait(database_url):
    with _engine(database_url, hold_history=0, hold_seconds=0) as engine:
        handle = engine.start_workflow(nap_loop, 3)
        assert handle.result(timeout=30) == 3
        assert body_runs[handle.workflow_id] == 4  # a replay at every wake-up
        handle = engine.start_workflow(recv_loop, 3)
        assert handle.result(timeout=30) == 3
        assert body_runs[handle.workflow_id] == 4


def test_the_hold_settings_are_checked():
    with pytest.raises(ConfigurationError, match="hold_history"):
        Engine("sqlite:///unused.sqlite3", hold_history=-1)
    with pytest.raises(ConfigurationError, match="hold_seconds"):
        Engine("sqlite:///unused.sqlite3", hold_seconds=-0.5)


def test_a_parked_dequeued_workflow_gives_back_its_worker_concurrency_slot(database_url):
    spans.clear()
    with _engine(database_url, suspend_threshold=0.2) as engine:
        set_default_engine(engine)  # the queue enqueues on the default engine
        try:
            first = one_at_a_time.enqueue(napper, "slot-a")
            second = one_at_a_time.enqueue(napper, "slot-b")
            assert first.result(timeout=30) == "slot-a"
            assert second.result(timeout=30) == "slot-b"
        finally:
            set_default_engine(None)
        assert engine.parking.parked == {}
    a_start, a_end = spans["slot-a"]
    b_start, b_end = spans["slot-b"]
    # worker_concurrency=1, but the first gave its slot back when it parked in its sleep: the
    # second started before the first ended (a checkout waiting days for a delivery message
    # must not stop its queue: example_projects/django_shop, tests/django/test_shop_*).
    assert b_start < a_end, (spans["slot-a"], spans["slot-b"])
