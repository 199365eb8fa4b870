"""Partitioned queues: the fair claim (round-robin over keys), per-key limits, the key-less
case, enqueue paths, and the PostgreSQL plan of the claim. Order is asserted, not timing."""

from __future__ import annotations

import itertools
import time
import uuid

import pytest

from durable_core import Client, Engine, Queue, step, workflow
from durable_core.errors import ConfigurationError
from durable_core.store import QueueClaim, WorkflowRow, open_store
from tests.crash.harness import max_overlap

fair = Queue("tests-fair", partitioned=True)
# One per key per process, two per key fleet-wide: with three engines the fleet-wide limit
# binds (three could run), and reaching it takes two engines.
fair_limited = Queue(
    "tests-fair-limited", partitioned=True, partition_concurrency=2, partition_worker_concurrency=1
)
flat = Queue("tests-flat")

_created = itertools.count(1_000)


@pytest.fixture
def store(database_url):
    s = open_store(database_url, pool_size=3)
    s.migrate()
    yield s
    s.close()


def put(store, key, *, queue="q", name="wf", n=1, not_before=None):
    rows = []
    for _ in range(n):
        t = next(_created)
        rows.append(
            WorkflowRow(
                workflow_id=f"{key}-{uuid.uuid4().hex[:8]}",
                name=name,
                status="ENQUEUED",
                queue_name=queue,
                created_at=t,
                updated_at=t,
                not_before=not_before,
                partition_key=key,
            )
        )
    with store.transaction() as conn:
        assert all(store.insert_workflows(rows, conn))


def claim(store, limit, queue="q", **options):
    request = QueueClaim(
        name=queue,
        limit=limit,
        concurrency=options.pop("concurrency", None),
        rate_limit=options.pop("rate_limit", None),
        priority_enabled=False,
        names=("wf",),
        versions=("v1",),
        partitioned=True,
        **options,
    )
    rows = store.claim_from_queue(request, "exec-1", f"tok-{uuid.uuid4().hex[:6]}:")
    return [row.partition_key for row in rows]


def finish(store):
    store.run("UPDATE durable_workflows SET status = 'SUCCESS' WHERE status = 'PENDING'")


def test_a_small_key_is_claimed_in_the_first_round_behind_a_big_backlog(store):
    put(store, "big", n=300)
    put(store, "small-a")
    put(store, "small-b")
    # The small keys' items are the newest of the queue; FIFO would take them last.
    assert sorted(claim(store, 3)) == ["big", "small-a", "small-b"]


def test_claims_go_round_robin_over_the_keys(store):
    for key in ("k1", "k2", "k3", "k4", "k5"):
        put(store, key, n=3)
    rounds = [claim(store, 2) for _ in range(5)]
    assert rounds == [
        ["k1", "k2"],
        ["k3", "k4"],
        ["k5", "k1"],
        ["k2", "k3"],
        ["k4", "k5"],
    ]


def test_a_claim_larger_than_the_keys_takes_rounds_and_fills_its_room(store):
    put(store, "a", n=10)
    put(store, "b", n=1)
    put(store, "c", n=2)
    got = claim(store, 8)
    # Round one: a, b, c; round two: a, c; then a fills the rest.
    assert got == ["a", "b", "c", "a", "c", "a", "a", "a"]


def test_delayed_rows_of_a_key_count_once_due(store):
    put(store, "later", not_before=store.now_ms() + 3_600_000)
    put(store, "due", not_before=store.now_ms() - 1)
    put(store, "ready")
    assert sorted(claim(store, 5)) == ["due", "ready"]


def test_per_key_concurrency(store):
    put(store, "a", n=5)
    put(store, "b", n=1)
    assert sorted(claim(store, 10, partition_concurrency=2)) == ["a", "a", "b"]
    assert claim(store, 10, partition_concurrency=2) == []
    finish(store)
    assert claim(store, 10, partition_concurrency=2) == ["a", "a"]


def test_per_key_rate_limit(store):
    put(store, "a", n=5)
    put(store, "b", n=5)
    assert sorted(claim(store, 10, partition_rate_limit=(2, 60.0))) == ["a", "a", "b", "b"]
    finish(store)
    assert claim(store, 10, partition_rate_limit=(2, 60.0)) == []


def test_per_key_worker_concurrency(store):
    put(store, "a", n=3)
    put(store, "b", n=3)
    got = claim(
        store,
        10,
        partition_worker_concurrency=2,
        running_here_by_key=(("a", 1),),
    )
    assert sorted(got) == ["a", "b", "b"]


def test_queue_wide_limits_still_bind(store):
    put(store, "a", n=5)
    put(store, "b", n=5)
    assert sorted(claim(store, 10, concurrency=3)) in (["a", "a", "b"], ["a", "b", "b"])
    assert claim(store, 10, concurrency=3) == []


def test_other_names_and_versions_are_left(store):
    put(store, "a", name="other")
    put(store, "b")
    assert claim(store, 10) == ["b"]


def test_key_less_rows_join_the_default_partition(store):
    row = WorkflowRow(
        workflow_id="no-key", name="wf", status="ENQUEUED", queue_name="q",
        created_at=1, updated_at=1,
    )  # fmt: skip
    store.insert_workflow(row)
    put(store, "a")
    assert claim(store, 10) == ["a"]  # not seen by the fair claim until adopted
    assert store.adopt_unkeyed("q") == 1
    assert claim(store, 10) == [""]


def test_declaration_rules():
    with pytest.raises(ConfigurationError, match="partitioned=True"):
        Queue("tests-fair-bad", partition_concurrency=2)
    with pytest.raises(ConfigurationError, match="priority_enabled"):
        Queue("tests-fair-bad", partitioned=True, priority_enabled=True)


@workflow
def keyed(label: str) -> str:
    return label


def test_enqueue_needs_a_key_on_a_partitioned_queue_and_refuses_one_elsewhere(engine):
    with pytest.raises(ConfigurationError, match=r"partition_key=\.\.\.\) is required"):
        fair.enqueue(keyed, "x")
    with pytest.raises(ConfigurationError, match="partitioned=True"):
        flat.enqueue(keyed, "x", partition_key="t1")
    with pytest.raises(ConfigurationError, match="partition_key"):
        fair.enqueue_many(keyed, [("x",)])
    handle = fair.enqueue(keyed, "x", partition_key="tenant-1")
    assert handle.result(timeout=20) == "x"
    assert engine.store.get_workflow(handle.workflow_id).partition_key == "tenant-1"


def test_enqueue_many_with_keys_runs_every_item(engine):
    handles = fair.enqueue_many(
        keyed, [(str(i),) for i in range(12)], partition_keys=[f"t{i % 3}" for i in range(12)]
    )
    assert [h.result(timeout=30) for h in handles] == [str(i) for i in range(12)]
    stored = {engine.store.get_workflow(h.workflow_id).partition_key for h in handles}
    assert stored == {"t0", "t1", "t2"}
    same = fair.enqueue_many(keyed, [("a",), ("b",)], partition_key="one")
    assert [h.result(timeout=30) for h in same] == ["a", "b"]


async def test_the_async_enqueue_takes_a_key(engine):
    handle = await fair.enqueue_async(keyed, "async", partition_key="t-async")
    assert await handle.result_async(timeout=20) == "async"


def test_a_client_enqueue_without_a_key_runs_in_the_default_partition(engine, database_url):
    engine.queue_worker.unkeyed_interval = 0.1
    with Client(database_url) as client:
        name = keyed.__durable_workflow__.name
        keyed_handle = client.enqueue(fair.name, name, "k", partition_key="c1")
        bare = client.enqueue(fair.name, name, "bare")
        assert keyed_handle.result(timeout=20) == "k"
        assert bare.result(timeout=20) == "bare"
    assert engine.store.get_workflow(bare.workflow_id).partition_key == ""


@step
def hold(seconds: float) -> tuple[float, float]:
    start = time.monotonic()
    time.sleep(seconds)
    return (start, time.monotonic())


@workflow
def held(seconds: float) -> tuple[float, float]:
    return hold(seconds)


def test_per_key_concurrency_is_exact_across_three_engines(engine, database_url):
    others = [
        Engine(database_url, executor_id=f"other-{uuid.uuid4().hex[:6]}", run_scheduler=False)
        for _ in range(2)
    ]
    for other in others:
        other.launch()
    try:
        handles = {
            key: [
                fair_limited.enqueue(held, 1.0, partition_key=key) for _ in range(6)
            ]  # long enough to overlap under load
            for key in ("x", "y")
        }
        for key, hs in handles.items():
            spans = [tuple(h.result(timeout=60)) for h in hs]
            peak = max_overlap(spans)
            assert peak <= 2, (key, peak)
            assert peak == 2, "the limit was never reached: a broken limit would pass"
            executors = {engine.store.get_workflow(h.workflow_id).executor_id for h in hs}
            assert len(executors) >= 2  # one per key per process: it took two engines
    finally:
        for other in others:
            other.shutdown(timeout=5)


def test_the_fair_claim_reads_indexes_not_the_table(store, backend):
    if backend != "postgres":
        pytest.skip("PostgreSQL plans by statistics; SQLite is told its index (INDEXED BY)")
    put(store, "big", n=5000)
    for i in range(100):
        put(store, f"small-{i:03}", n=3)
    store.run("ANALYZE durable_workflows")
    seen: list[tuple[str, object]] = []
    original = store.execute

    def capture(conn, sql, params=()):
        if "partition_key" in sql and ("RECURSIVE" in sql or "LATERAL" in sql):
            seen.append((sql, params))
        return original(conn, sql, params)

    store.execute = capture
    try:
        assert len(claim(store, 200)) == 200
    finally:
        store.execute = original
    assert len(seen) >= 2
    with store.transaction() as conn:
        for sql, params in seen:
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, params).fetchall())
            assert "Seq Scan" not in plan, plan
            assert "durable_workflows_partition_idx" in plan, plan
