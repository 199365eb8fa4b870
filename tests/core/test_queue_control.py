"""Queues managed at run time (pause, resume, limits stored in the database) and the executors
view, in one process on both backends. (Across worker processes: tests/multiprocess.)"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from durable_core import Client, ExecutorInfo, Queue, QueueInfo, QueueLimits, step, workflow
from durable_core.errors import ConfigurationError
from tests.waiting import wait_for

controlled = Queue("tests-control")
declared = Queue("tests-control-declared", concurrency=3, rate_limit=(50, 1.0))
marker = Queue("tests-control-marker")

RUNNING: dict[str, int] = {}
PEAK: dict[str, int] = {}
STARTS: dict[str, list[float]] = {}
LOCK = threading.Lock()
GATES: dict[str, threading.Event] = {}


@step
def hold(group: str, seconds: float) -> None:
    with LOCK:
        RUNNING[group] = RUNNING.get(group, 0) + 1
        PEAK[group] = max(PEAK.get(group, 0), RUNNING[group])
        STARTS.setdefault(group, []).append(time.monotonic())
    gate = GATES.get(group)
    if gate is not None:
        assert gate.wait(30)
    else:
        time.sleep(seconds)
    with LOCK:
        RUNNING[group] -= 1


@workflow
def held(group: str, seconds: float) -> str:
    hold(group, seconds)
    return group


def statuses(handles) -> list[str]:
    return [str(h.status().status) for h in handles]


def a_full_pass(engine) -> None:
    """Wait until the engine's queue worker has made a whole dequeue pass that began after
    this call: a marker enqueued after an earlier marker finished is claimed by such a pass."""
    for _ in range(2):
        marker.enqueue(held, f"marker-{uuid.uuid4()}", 0).result(timeout=20)


def test_pause_stops_claims_and_resume_runs_the_backlog(engine):
    group = str(uuid.uuid4())
    info = engine.pause_queue(controlled.name)
    assert isinstance(info, QueueInfo) and info.paused
    handles = [controlled.enqueue(held, group, 0) for _ in range(3)]  # enqueue still accepted
    a_full_pass(engine)
    assert statuses(handles) == ["ENQUEUED"] * 3
    assert engine.get_queue(controlled.name).enqueued == 3
    assert not engine.resume_queue(controlled.name).paused
    assert [h.result(timeout=20) for h in handles] == [group] * 3


def test_pause_lets_running_work_finish(engine):
    group = str(uuid.uuid4())
    GATES[group] = threading.Event()
    first = controlled.enqueue(held, group, 0)
    wait_for(lambda: RUNNING.get(group) == 1, what="the first workflow running")
    engine.pause_queue(controlled.name)
    second = controlled.enqueue(held, group, 0)
    GATES[group].set()
    assert first.result(timeout=20) == group
    a_full_pass(engine)
    assert str(second.status().status) == "ENQUEUED"
    engine.resume_queue(controlled.name)
    assert second.result(timeout=20) == group


def test_concurrency_set_at_run_time_holds_and_can_be_lifted(engine):
    group = str(uuid.uuid4())
    info = engine.set_queue_limits(controlled.name, concurrency=2)
    assert info.concurrency == 2 and info.overridden == ("concurrency",)
    handles = [controlled.enqueue(held, group, 0.15) for _ in range(6)]
    for h in handles:
        h.result(timeout=30)
    assert PEAK[group] == 2
    lifted = engine.set_queue_limits(controlled.name, concurrency=None)
    assert lifted.concurrency is None and lifted.overridden == ("concurrency",)
    group = str(uuid.uuid4())
    GATES[group] = threading.Event()
    handles = [controlled.enqueue(held, group, 0) for _ in range(4)]
    wait_for(lambda: RUNNING.get(group) == 4, what="all four running without a limit")
    GATES[group].set()
    for h in handles:
        h.result(timeout=20)


def test_worker_concurrency_override(engine):
    group = str(uuid.uuid4())
    engine.set_queue_limits(controlled.name, worker_concurrency=1)
    handles = [controlled.enqueue(held, group, 0.05) for _ in range(4)]
    for h in handles:
        h.result(timeout=30)
    assert PEAK[group] == 1


def test_rate_limit_override(engine):
    group = str(uuid.uuid4())
    engine.set_queue_limits(controlled.name, rate_limit=(2, 1.0))
    handles = [controlled.enqueue(held, group, 0) for _ in range(5)]
    for h in handles:
        h.result(timeout=30)
    rows = engine.store.fetchall(
        "SELECT started_at FROM durable_workflows WHERE queue_name = %s AND workflow_id IN "
        f"({', '.join(['%s'] * len(handles))})",
        (controlled.name, *[h.workflow_id for h in handles]),
    )
    starts = sorted(int(r[0]) for r in rows)
    assert max(sum(1 for t in starts if s <= t < s + 1000) for s in starts) <= 2
    assert starts[-1] - starts[0] >= 2000  # 5 starts at 2 per second span two windows


def test_overrides_win_until_reset_and_a_pause_survives_reset(engine):
    name = declared.name
    before = engine.get_queue(name)
    assert (before.concurrency, before.rate_limit, before.overridden) == (3, (50, 1.0), ())
    assert before.declared == QueueLimits(concurrency=3, rate_limit=(50, 1.0))
    engine.set_queue_limits(name, concurrency=1, rate_limit=None)
    engine.set_queue_limits(name, worker_concurrency=4)  # the others stay
    engine.pause_queue(name)
    info = engine.get_queue(name)
    assert (info.concurrency, info.worker_concurrency, info.rate_limit) == (1, 4, None)
    assert set(info.overridden) == {"concurrency", "worker_concurrency", "rate_limit"}
    assert info.paused and info.updated_at is not None
    after = engine.reset_queue(name)
    assert (after.concurrency, after.worker_concurrency, after.rate_limit) == (3, None, (50, 1.0))
    assert after.overridden == () and after.paused
    assert not engine.resume_queue(name).paused
    listed = {q.name: q for q in engine.list_queues()}
    assert listed[name].concurrency == 3 and "_durable_internal" not in listed


def test_a_process_without_the_code_sees_the_published_declaration(
    engine, database_url, monkeypatch
):
    from durable_core.integration import REGISTRY

    engine.set_queue_limits(declared.name, worker_concurrency=2)
    monkeypatch.delitem(REGISTRY.queues, declared.name)  # as in a process without the code
    with Client(database_url) as client:
        info = client.get_queue(declared.name)
    assert info.declared == QueueLimits(concurrency=3, rate_limit=(50, 1.0))
    assert info.declared_version == engine.application_version
    assert (info.concurrency, info.worker_concurrency, info.rate_limit) == (3, 2, (50, 1.0))


def test_bad_settings_are_refused_before_anything_is_stored(engine):
    for kwargs, match in [
        ({"concurrency": 0}, "concurrency must be a positive integer"),
        ({"worker_concurrency": -1}, "worker_concurrency must be"),
        ({"concurrency": True}, "concurrency must be"),
        ({"concurrency": 2**31}, "concurrency must be"),
        ({"rate_limit": (0, 1.0)}, "rate_limit count"),
        ({"rate_limit": (1, float("nan"))}, "rate_limit period"),
        ({"rate_limit": 5}, r"rate_limit must be a tuple"),
        ({}, "at least one of"),
    ]:
        with pytest.raises(ConfigurationError, match=match):
            engine.set_queue_limits(controlled.name, **kwargs)
    with pytest.raises(ConfigurationError, match="queue name"):
        engine.pause_queue("")
    with pytest.raises(ConfigurationError, match="queue name"):
        engine.pause_queue("a\x00b")
    (stored,) = engine.store.queue_settings(controlled.name)  # the published declaration
    assert stored.overridden == () and not stored.paused


def test_client_and_async_twins_manage_queues(engine, database_url):
    group = str(uuid.uuid4())

    async def drive() -> list[QueueInfo]:
        async with Client(database_url) as client:
            paused = await client.pause_queue_async(controlled.name)
            limited = await client.set_queue_limits_async(controlled.name, concurrency=5)
            listed = await client.list_queues_async()
            reset = await client.reset_queue_async(controlled.name)
            return [paused, limited, *[q for q in listed if q.name == controlled.name], reset]

    paused, limited, listed, reset = asyncio.run(drive())
    assert paused.paused and limited.concurrency == 5 and listed.concurrency == 5
    assert reset.paused and reset.overridden == ()
    handle = controlled.enqueue(held, group, 0)
    a_full_pass(engine)
    assert str(handle.status().status) == "ENQUEUED"  # the Client's pause binds this engine
    with Client(database_url) as client:
        assert not client.resume_queue(controlled.name).paused
    assert handle.result(timeout=20) == group


def test_executors_show_live_and_dead_with_what_they_run(engine):
    group = str(uuid.uuid4())
    GATES[group] = threading.Event()
    handle = controlled.enqueue(held, group, 0)
    wait_for(lambda: RUNNING.get(group) == 1, what="the workflow running")
    t = engine.store.now_ms()
    engine.store.heartbeat("dead-executor", "v-old", "elsewhere", 1, 10_000)
    engine.store.run(
        "UPDATE durable_executors SET heartbeat_at = %s WHERE executor_id = %s",
        (t - 120_000, "dead-executor"),
    )
    executors = {e.executor_id: e for e in engine.list_executors()}
    me = executors[engine.executor_id]
    assert isinstance(me, ExecutorInfo) and me.live
    assert me.application_version == engine.application_version
    assert me.running >= 1 and handle.workflow_id in me.workflow_ids
    assert me.running_by_name[held.__durable_workflow__.name] >= 1
    dead = executors["dead-executor"]
    assert not dead.live and dead.heartbeat_age >= 100 and dead.running == 0
    assert dead.application_version == "v-old"
    assert list(executors)[-1] == "dead-executor"  # freshest heartbeat first
    assert executors["dead-executor"].as_dict()["workflow_ids"] == []
    GATES[group].set()
    handle.result(timeout=20)


def test_running_by_executor_counts_pending_workflows_per_executor_and_name(engine):
    """The one listing behind the executors view, the dashboard and its change fingerprint
    (it replaced a per-executor twin): PENDING rows only, per executor and workflow name."""
    t = engine.store.now_ms()
    a, b = f"rbe-a-{uuid.uuid4().hex[:6]}", f"rbe-b-{uuid.uuid4().hex[:6]}"
    rows = [(a, "one", "PENDING")] * 2 + [(a, "two", "PENDING"), (b, "one", "PENDING")]
    rows += [(a, "one", "SUCCESS"), (b, "two", "ENQUEUED")]
    for n, (executor_id, name, status) in enumerate(rows):
        engine.store.run(
            "INSERT INTO durable_workflows (workflow_id, name, status, executor_id, created_at, "
            "updated_at) VALUES (%s, %s, %s, %s, %s, %s)",
            (f"{executor_id}-{n}", name, status, executor_id, t, t),
        )
    held = engine.store.running_by_executor()
    assert held[a] == {"one": 2, "two": 1}
    assert held[b] == {"one": 1}


def test_the_test_engine_honours_a_pause(backend):
    from durable_core import set_default_engine
    from durable_core.testing import TestEngine
    from tests.conftest import PG_URL

    group = str(uuid.uuid4())
    with TestEngine(None if backend == "sqlite" else PG_URL, schema_prefix="testing_") as engine:
        set_default_engine(engine)
        try:
            engine.pause_queue(controlled.name)
            handle = controlled.enqueue(held, group, 0)
            engine.run_until_idle()  # returns: a paused queue's backlog is not work to wait for
            assert str(handle.status().status) == "ENQUEUED"
            engine.resume_queue(controlled.name)
            engine.run_until_idle()
            assert handle.result(timeout=5) == group
        finally:
            set_default_engine(None)
