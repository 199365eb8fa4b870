"""Queues in one process: enqueue, concurrency, priority, deduplication, delay, rate limit,
Client.enqueue by name. (Limits across several worker processes: tests/multiprocess.)"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from durable_core import Client, Queue, step, workflow
from durable_core.errors import ConfigurationError, DeduplicationConflict, DurableError

plain = Queue("tests-plain")
limited = Queue("tests-limited", concurrency=2)
ordered = Queue("tests-ordered", worker_concurrency=1, priority_enabled=True)
throttled = Queue("tests-throttled", rate_limit=(5, 1.0))

RUNNING: dict[str, int] = {}
PEAK: dict[str, int] = {}
ORDER: list[str] = []
LOCK = threading.Lock()


@step
def track(group: str, hold: float) -> None:
    with LOCK:
        RUNNING[group] = RUNNING.get(group, 0) + 1
        PEAK[group] = max(PEAK.get(group, 0), RUNNING[group])
    time.sleep(hold)
    with LOCK:
        RUNNING[group] -= 1


@workflow
def tracked(group: str, hold: float) -> str:
    track(group, hold)
    return group


@workflow
def remember(label: str) -> str:
    ORDER.append(label)
    return label


def test_enqueue_runs(engine):
    handle = plain.enqueue(tracked, "plain", 0)
    assert handle.result(timeout=10) == "plain"
    status = handle.status()
    assert status.queue == "tests-plain" and status.status == "SUCCESS"


def test_concurrency_limit(engine):
    group = str(uuid.uuid4())
    handles = [limited.enqueue(tracked, group, 0.1) for _ in range(8)]
    for handle in handles:
        handle.result(timeout=20)
    assert PEAK[group] == 2


def test_priority_order(engine):
    ORDER.clear()
    gate = ordered.enqueue(tracked, "gate", 0.3)  # occupies the single slot
    time.sleep(0.05)
    handles = [
        ordered.enqueue(remember, label, priority=prio)
        for label, prio in [("low", 10), ("high", 1), ("mid", 5)]
    ]
    gate.result(timeout=10)
    for handle in handles:
        handle.result(timeout=10)
    assert ORDER == ["high", "mid", "low"]


def test_deduplication(engine):
    dedup = f"dedup-{uuid.uuid4()}"
    first = plain.enqueue(tracked, "dedup", 0.3, deduplication_id=dedup)
    with pytest.raises(DeduplicationConflict, match=dedup):
        plain.enqueue(tracked, "dedup", 0.3, deduplication_id=dedup)
    first.result(timeout=10)
    # Once the first finished, the ID is free again.
    plain.enqueue(tracked, "dedup", 0, deduplication_id=dedup).result(timeout=10)


def test_delay(engine):
    started = time.time()
    handle = plain.enqueue(remember, "later", delay=0.5)
    assert handle.status().status == "ENQUEUED"
    handle.result(timeout=10)
    status = handle.status()
    assert (status.started_at.timestamp() - started) >= 0.45


def test_rate_limit(engine):
    handles = [throttled.enqueue(remember, f"r{i}") for i in range(8)]
    for handle in handles:
        handle.result(timeout=20)
    starts = sorted(h.status().started_at.timestamp() for h in handles)
    for i, start in enumerate(starts):
        in_window = [s for s in starts[i:] if s < start + 1.0]
        assert len(in_window) <= 5


def test_client_enqueue_by_name(engine, database_url):
    with Client(database_url) as client:
        name = remember.__durable_workflow__.name
        handle = client.enqueue("tests-plain", name, "from-client")
        assert handle.result(timeout=10) == "from-client"
        handle = client.enqueue("tests-plain", name, kwargs={"label": "kw"})
        assert handle.result(timeout=10) == "kw"
        unknown = client.enqueue("tests-plain", "no.such.workflow", 1)
        time.sleep(0.3)
        assert unknown.status().status == "ENQUEUED"  # kept, visible, never lost


def test_client_refuses_unmigrated_database(tmp_path):
    with pytest.raises(DurableError, match="not been migrated"):
        Client(f"sqlite:///{tmp_path / 'empty.sqlite3'}")


def test_queue_bad_input():
    with pytest.raises(ConfigurationError, match="rate_limit period"):
        Queue("bad-rate", rate_limit=(5, 0))
    with pytest.raises(ConfigurationError, match="rate_limit period"):
        Queue("bad-rate2", rate_limit=(5, -1.0))
    with pytest.raises(ConfigurationError, match="concurrency"):
        Queue("bad-conc", concurrency=0)
    with pytest.raises(ConfigurationError, match="different settings"):
        Queue("tests-plain", concurrency=3)


def test_priority_needs_enabled_queue(engine):
    with pytest.raises(ConfigurationError, match="priority_enabled"):
        plain.enqueue(remember, "x", priority=1)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_other_connections_wake_the_queue_without_polling(database_url):
    """Work enqueued through another connection (as by another process) starts promptly:
    PostgreSQL NOTIFY, or SQLite's data_version watch, not the safety poll (set to 30 s)."""
    from durable_core import Engine

    with Engine(database_url, executor_id="watch", poll_interval=30.0, run_scheduler=False):
        with Client(database_url) as client:
            time.sleep(0.3)  # the queue worker is now idle in its (30 s) wait
            started = time.monotonic()
            handle = client.enqueue("tests-plain", remember.__durable_workflow__.name, "woken")
            assert handle.result(timeout=25) == "woken"
            # Well under the 30 s poll, with room for two loaded cores.
            assert time.monotonic() - started < 10.0
