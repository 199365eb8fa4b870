"""Debounced enqueues: repeated enqueues with one key coalesce into one run with the latest
arguments; each restarts the timer, capped by debounce_max_wait; concurrent enqueuers get one
workflow. Times run on the testing toolkit's clock (no sleeps)."""

from __future__ import annotations

import threading

import pytest

from durable_core import Client, Queue, start_workflow, workflow
from durable_core.errors import ConfigurationError
from durable_core.testing import TestEngine

bounce = Queue("tests-bounce")
bounce_fair = Queue("tests-bounce-fair", partitioned=True)

RUNS: list[tuple[str, ...]] = []


@workflow
def reindex(*labels: str) -> tuple[str, ...]:
    RUNS.append(labels)
    return labels


@workflow
def other(label: str) -> str:
    return label


@pytest.fixture
def te(database_url):
    RUNS.clear()
    with TestEngine(database_url, fresh_schema=False) as engine:
        yield engine


def waiting(engine, key):
    rows = engine.store.read_all(
        "SELECT workflow_id FROM durable_workflows WHERE debounce_key = %s AND status = 'ENQUEUED'",
        (key,),
    )
    return [r[0] for r in rows]


def test_enqueues_coalesce_into_one_run_with_the_latest_arguments(te):
    first = bounce.enqueue(reindex, "a", debounce_key="doc-1", debounce=10)
    te.advance(4)
    second = bounce.enqueue(reindex, "b", debounce_key="doc-1", debounce=10)
    te.advance(4)
    third = bounce.enqueue(reindex, "c", "d", debounce_key="doc-1", debounce=10)
    assert first.workflow_id == second.workflow_id == third.workflow_id
    assert first.created and not second.created and not third.created
    assert RUNS == []
    te.run_until_idle()
    assert RUNS == [("c", "d")]
    assert list(third.result(timeout=5)) == ["c", "d"]


def test_each_enqueue_restarts_the_timer(te):
    handle = bounce.enqueue(reindex, "a", debounce_key="doc-2", debounce=10)
    te.advance(8)
    bounce.enqueue(reindex, "b", debounce_key="doc-2", debounce=10)
    te.advance(8)  # 16 s after the first, 8 after the latest: not yet
    assert RUNS == [] and handle.status().status == "ENQUEUED"
    te.advance(2.5)
    assert RUNS == [("b",)]


def test_max_wait_caps_the_restarts(te):
    handle = bounce.enqueue(reindex, "0", debounce_key="doc-3", debounce=10, debounce_max_wait=25)
    for i in range(1, 4):
        te.advance(8)  # 8, 16, 24 s: each restarts the timer
        bounce.enqueue(reindex, str(i), debounce_key="doc-3", debounce=10, debounce_max_wait=25)
    assert RUNS == []
    te.advance(1.5)  # 25.5 s after the first: the cap, not 34 s after the latest
    assert RUNS == [("3",)]
    assert list(handle.result(timeout=5)) == ["3"]


def test_after_the_run_starts_a_new_enqueue_starts_a_new_debounce(te):
    first = bounce.enqueue(reindex, "a", debounce_key="doc-4", debounce=1)
    te.run_until_idle()
    second = bounce.enqueue(reindex, "b", debounce_key="doc-4", debounce=1)
    assert second.workflow_id != first.workflow_id
    te.run_until_idle()
    assert RUNS == [("a",), ("b",)]


def test_keys_are_per_queue_and_per_key(te):
    a = bounce.enqueue(reindex, "a", debounce_key="k1", debounce=5)
    b = bounce.enqueue(reindex, "b", debounce_key="k2", debounce=5)
    c = bounce_fair.enqueue(reindex, "c", debounce_key="k1", debounce=5, partition_key="t")
    assert len({a.workflow_id, b.workflow_id, c.workflow_id}) == 3
    te.run_until_idle()
    assert sorted(RUNS) == [("a",), ("b",), ("c",)]


def test_a_key_held_by_another_workflow_is_refused(te):
    bounce.enqueue(reindex, "a", debounce_key="doc-5", debounce=5)
    with pytest.raises(ConfigurationError, match="another name"):
        bounce.enqueue(other, "x", debounce_key="doc-5", debounce=5)


def test_option_rules(te):
    with pytest.raises(ConfigurationError, match="both debounce_key and debounce"):
        bounce.enqueue(reindex, "a", debounce_key="k")
    with pytest.raises(ConfigurationError, match="both debounce_key and debounce"):
        bounce.enqueue(reindex, "a", debounce=3)
    with pytest.raises(ConfigurationError, match="workflow_id"):
        bounce.enqueue(reindex, "a", debounce_key="k", debounce=3, workflow_id="w")
    with pytest.raises(ConfigurationError, match="deduplication_id"):
        bounce.enqueue(reindex, "a", debounce_key="k", debounce=3, deduplication_id="d")
    with pytest.raises(ConfigurationError, match="positive"):
        bounce.enqueue(reindex, "a", debounce_key="k", debounce=0)


@workflow
def debounces_inside() -> str:
    bounce.enqueue(reindex, "x", debounce_key="inner", debounce=1)
    return "no"


def test_refused_inside_a_workflow(te):
    handle = start_workflow(debounces_inside)
    te.run_until_idle()
    with pytest.raises(ConfigurationError, match="inside a workflow"):
        handle.result(timeout=5)


def test_a_client_debounces_too(te):
    with Client(te.database_url) as client:
        name = reindex.__durable_workflow__.name
        one = client.enqueue(bounce.name, name, "x", debounce_key="doc-6", debounce=3600)
        two = client.enqueue(bounce.name, name, "y", debounce_key="doc-6", debounce=3600)
    assert one.workflow_id == two.workflow_id and one.created and not two.created
    assert waiting(te, "doc-6") == [one.workflow_id]


def test_concurrent_enqueuers_make_one_workflow(te):
    ids: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def enqueue_many(n: int) -> None:
        try:
            barrier.wait()
            for i in range(5):
                h = bounce.enqueue(reindex, f"{n}-{i}", debounce_key="hot", debounce=3600)
                with lock:
                    ids.append(h.workflow_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=enqueue_many, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(ids) == 30 and len(set(ids)) == 1
    assert waiting(te, "hot") == ids[:1]
