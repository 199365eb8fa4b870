"""Queue.enqueue_many: a batch of ENQUEUED workflows in one transaction."""

from __future__ import annotations

import threading

import pytest

from durable_core import Queue, step, workflow
from durable_core.errors import SerializationError
from tests.statements import captured

batch_queue = Queue("batch_q")


@step
def double(x: int) -> int:
    return 2 * x


@workflow
def batch_item(x: int, y: int = 0) -> int:
    return double(x) + y


def test_a_batch_runs_every_item(engine):
    handles = batch_queue.enqueue_many(batch_item, [(i, 1) for i in range(200)])
    assert len({h.workflow_id for h in handles}) == 200
    assert [h.result(timeout=60) for h in handles] == [2 * i + 1 for i in range(200)]


def test_a_batch_is_one_transaction(engine):
    transactions = 0
    original = engine.store.transaction
    me = threading.get_ident()

    def counting():
        nonlocal transactions
        transactions += threading.get_ident() == me  # not the queue worker's claims
        return original()

    engine.store.transaction = counting
    try:
        handles = batch_queue.enqueue_many(batch_item, [(i,) for i in range(50)], delay=3600)
    finally:
        engine.store.transaction = original
    assert transactions == 1
    assert {engine.retrieve_workflow(h.workflow_id).status().status for h in handles} == {
        "ENQUEUED"
    }


def test_a_batch_with_a_bad_item_stores_nothing(engine):
    before = len(engine.list_workflows(queue="batch_q", limit=None))
    with pytest.raises(SerializationError):
        batch_queue.enqueue_many(batch_item, [(1,), (object(),), (3,)])
    assert len(engine.list_workflows(queue="batch_q", limit=None)) == before


async def test_the_async_twin(engine):
    handles = await batch_queue.enqueue_many_async(batch_item, [(i,) for i in range(5)])
    assert [await h.result_async(timeout=60) for h in handles] == [0, 2, 4, 6, 8]


def _statements(engine, fn):
    """The statements ``fn`` runs on the store from this thread."""
    with captured(engine.store, this_thread=True) as seen:
        result = fn()
    return [sql for sql, _ in seen], result


def test_a_batch_is_a_few_statements_not_one_per_item(engine):
    size = engine.store.batch_rows * 2 + 1  # three statements' worth
    seen, handles = _statements(
        engine,
        lambda: batch_queue.enqueue_many(batch_item, [(i,) for i in range(size)], delay=3600),
    )
    inserts = [s for s in seen if s.startswith("INSERT INTO durable_workflows")]
    assert len(inserts) == 3, len(inserts)
    assert len(handles) == size
    assert engine.count_workflows(queue="batch_q", status=["ENQUEUED"]) == size


def test_deduplication_ids_per_item(engine):
    from durable_core.errors import DeduplicationConflict

    handles = batch_queue.enqueue_many(
        batch_item, [(1,), (2,), (3,)], delay=3600, deduplication_ids=["a", None, "b"]
    )
    assert len(handles) == 3
    before = engine.count_workflows(queue="batch_q")
    # Taken by a stored ENQUEUED workflow: the whole batch is refused, nothing stored.
    with pytest.raises(DeduplicationConflict) as raised:
        batch_queue.enqueue_many(batch_item, [(4,), (5,)], deduplication_ids=["c", "b"])
    assert raised.value.deduplication_id == "b"
    # Twice within the batch itself.
    with pytest.raises(DeduplicationConflict):
        batch_queue.enqueue_many(batch_item, [(4,), (5,)], deduplication_ids=["d", "d"])
    assert engine.count_workflows(queue="batch_q") == before
    # The same IDs through enqueue agree.
    with pytest.raises(DeduplicationConflict):
        batch_queue.enqueue(batch_item, 6, deduplication_id="a")
    again = batch_queue.enqueue_many(batch_item, [(7,)], deduplication_ids=["c"])
    assert engine.retrieve_workflow(again[0].workflow_id).status().status in (
        "ENQUEUED",
        "PENDING",
        "SUCCESS",
    )
    with pytest.raises(ValueError, match="deduplication_ids"):
        batch_queue.enqueue_many(batch_item, [(1,)], deduplication_ids=["x", "y"])


def test_a_claim_marks_its_batch_in_one_statement(database_url):
    from durable_core.store import QueueClaim, WorkflowRow, open_store

    store = open_store(database_url)
    try:
        store.migrate()
        t = store.now_ms()
        rows = [
            WorkflowRow(f"c-{i}", "batch_item", "ENQUEUED", "claimq", "[]", created_at=t + i)
            for i in range(30)
        ]
        with store.transaction() as conn:
            assert store.insert_workflows(rows, conn) == [True] * 30
        seen: list[str] = []
        original = store.execute

        def execute(conn, sql, params=()):
            seen.append(sql)
            return original(conn, sql, params)

        store.execute = execute  # type: ignore[method-assign]
        claim = QueueClaim("claimq", 20, None, None, False, ("batch_item",), ("v",))
        claimed = store.claim_from_queue(claim, "exec-1", "tok:")
        store.execute = original  # type: ignore[method-assign]
        assert [r.workflow_id for r in claimed] == [f"c-{i}" for i in range(20)]
        assert all(r.run_token == f"tok:{r.workflow_id}" and r.status == "PENDING" for r in claimed)
        assert len([s for s in seen if "UPDATE durable_workflows" in s]) == 1
        if store.dialect == "postgresql":
            # A FIFO queue without limits: the whole claim is that one statement.
            assert len(seen) == 1 and "FOR UPDATE SKIP LOCKED" in seen[0], seen
        store.record_step("c-3", "tok:c-3", 1, "double", "6", None, None, t)
        steps = store.load_steps_of([r.workflow_id for r in claimed])
        assert [s.output for s in steps.pop("c-3")] == ["6"]
        assert steps == {r.workflow_id: [] for r in claimed if r.workflow_id != "c-3"}
    finally:
        store.close()


def test_a_batch_stores_every_value_as_a_single_enqueue_does(engine):
    """The batch insert (PostgreSQL: one array per column) stores the same values as the
    single-row INSERT, text that array syntax would mangle included."""
    from durable_core.store import WorkflowRow

    store = engine.store
    texts = ['"quoted", {braced}', "back\\slash", "NULL", "", "tab\tnew\nline", "é ✓ 𝄞", "a,b}"]
    rows = []
    for i, text in enumerate(texts):
        rows.append(
            WorkflowRow(
                f"odd-{i}-{text}", text, "ENQUEUED", "batch_odd_q", text,
                application_version=None if i % 2 else text, max_recovery_attempts=i or None,
                priority=-(2**31) if i == 1 else i, deduplication_id=text if i else None,
                not_before=2**62 + i, timeout_ms=None if i % 2 else 2**40, created_at=10**12 + i,
                updated_at=10**12 + i, trace_context=text, partition_key=text,
            )
        )  # fmt: skip
    with store.transaction() as conn:
        assert store.insert_workflows(rows, conn) == [True] * len(rows)
        assert store.insert_workflows(rows[:1], conn) == [False]  # an existing ID: skipped
    for row in rows:
        assert store.get_workflow(row.workflow_id) == row


def test_the_batch_insert_is_one_short_statement_for_every_batch_size(engine):
    """PostgreSQL: before, a batch was a VALUES list of thousands of placeholders, a new
    statement text per batch size that the driver parsed again for every batch (most of
    enqueue_many's client CPU); now one array per column, the same short text every time."""
    if engine.store.dialect != "postgresql":
        pytest.skip("SQLite has no arrays: a multi-row VALUES list is its batch insert")
    texts = set()
    for size in (3, 700):
        seen, _ = _statements(
            engine,
            lambda size=size: batch_queue.enqueue_many(
                batch_item, [(i,) for i in range(size)], delay=3600
            ),
        )
        texts.update(s for s in seen if s.startswith("INSERT INTO durable_workflows"))
    assert len(texts) == 1, texts
    (text,) = texts
    assert text.count("%s") == 25 and len(text) < 4096, text
