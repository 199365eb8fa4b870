"""Queue.enqueue_many: a batch of ENQUEUED workflows in one transaction."""

from __future__ import annotations

import threading

import pytest

from durable_core import Queue, step, workflow
from durable_core.errors import SerializationError

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
