"""@transaction in atomic(), exactly-once ORM writes, and transactional enqueue."""

from __future__ import annotations

import dataclasses
import threading
import types
import uuid

import pytest
from django.db import connection, transaction
from orders.models import Product

import django_durable
from durable_core import start_workflow
from durable_core.errors import DeduplicationConflict, SerializationError, WorkflowNotFound
from tests.django.testapp import workflows as wf


def test_transaction_step_writes_once_and_replays_its_output(web_engine):
    sku = f"tx-{uuid.uuid4().hex[:8]}"
    ctx = types.SimpleNamespace(workflow_id=f"wf-{sku}", engine=web_engine)
    defn = wf.create_product.__durable_step__
    adapter = web_engine.transactions
    assert adapter.run(ctx, 1, defn, (sku,), {}) == (1, None)
    # A second run of the same step (a replay after a crash) returns the recorded output and
    # does not run the function again: still one row.
    assert adapter.run(ctx, 1, defn, (sku,), {}) == (1, None)
    assert Product.objects.filter(sku=sku).count() == 1


def test_transaction_step_in_workflow_commits_with_checkpoint(web_engine):
    sku = f"wf-{uuid.uuid4().hex[:8]}"
    handle = start_workflow(wf.make_product, sku)
    assert handle.result(timeout=20) == 1
    assert Product.objects.filter(sku=sku).count() == 1
    with django_durable.get_engine().store.connection() as conn:
        rows = web_engine.store.execute(
            conn,
            "SELECT step_id FROM durable_transaction_outputs WHERE workflow_id = %s",
            (handle.workflow_id,),
        ).fetchall()
    assert [r[0] for r in rows] == [1]


def test_a_900_byte_workflow_id_runs_transaction_steps(web_engine):
    """The Django migrations' durable_transaction_outputs had VARCHAR(255) IDs (PostgreSQL
    refused every @transaction of a longer ID); one 1000-byte rule for every table."""
    sku = f"long-{uuid.uuid4().hex[:8]}"
    workflow_id = sku + "é" * ((900 - len(sku)) // 2)
    assert len(workflow_id.encode()) >= 899
    handle = start_workflow(wf.make_product, sku, workflow_id=workflow_id)
    assert handle.result(timeout=20) == 1
    assert Product.objects.filter(sku=sku).count() == 1


def test_failing_transaction_step_rolls_back_its_writes(web_engine):
    sku = f"fail-{uuid.uuid4().hex[:8]}"
    handle = start_workflow(wf.failing_transaction, sku)
    assert handle.result(timeout=20) == f"rolled back: boom {sku}"
    assert not Product.objects.filter(sku=sku).exists()


def test_start_inside_atomic_rolled_back_never_existed(web_engine):
    workflow_id = f"rb-{uuid.uuid4().hex[:8]}"

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        with transaction.atomic():
            start_workflow(wf.adder, 1, 2, workflow_id=workflow_id)
            raise Abort
    with pytest.raises(WorkflowNotFound):
        web_engine.retrieve_workflow(workflow_id)


def test_start_inside_atomic_runs_only_after_commit(web_engine):
    workflow_id = f"ok-{uuid.uuid4().hex[:8]}"
    with transaction.atomic():
        handle = start_workflow(wf.adder, 2, 3, workflow_id=workflow_id)
        # Not committed yet: the engine's own connections cannot see it. (Through the read
        # connection: on SQLite this thread holds the write lock, and a read on the store's
        # main connection can queue behind an engine thread waiting for that lock.)
        seen = web_engine.store.read_all(
            "SELECT 1 FROM durable_workflows WHERE workflow_id = %s", (workflow_id,)
        )
        assert seen == []
    assert handle.result(timeout=20) == 5


def test_enqueue_inside_atomic_joins_the_transaction(worker):
    workflow_id = f"enq-{uuid.uuid4().hex[:8]}"
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            wf.test_queue.enqueue(wf.adder, 1, 1, workflow_id=workflow_id)
            raise RuntimeError("rollback")
    with pytest.raises(WorkflowNotFound):
        worker.retrieve_workflow(workflow_id)
    with transaction.atomic():
        handle = wf.test_queue.enqueue(wf.adder, 4, 4, workflow_id=workflow_id)
    assert handle.result(timeout=20) == 8


def test_unserializable_argument_leaves_the_transaction_untouched(web_engine):
    sku = f"ser-{uuid.uuid4().hex[:8]}"
    with transaction.atomic():
        Product.objects.create(sku=sku, name=sku, price_cents=1, stock=1)
        with pytest.raises(SerializationError):
            start_workflow(wf.adder, object(), 1)
        Product.objects.filter(sku=sku).update(stock=5)
    assert Product.objects.get(sku=sku).stock == 5


def test_deduplication_conflict_inside_atomic_keeps_the_transaction_usable(web_engine):
    sku = f"dd-{uuid.uuid4().hex[:8]}"
    dedup = f"dedup-{sku}"
    with transaction.atomic():
        wf.test_queue.enqueue(wf.adder, 1, 1, deduplication_id=dedup)
        with pytest.raises(DeduplicationConflict):
            wf.test_queue.enqueue(wf.adder, 1, 1, deduplication_id=dedup)
        Product.objects.create(sku=sku, name=sku, price_cents=1, stock=1)
    assert Product.objects.filter(sku=sku).exists()


def test_plain_steps_get_connection_hygiene(web_engine, monkeypatch):
    """Around each plain step body the adapter drops stale connections, as Django does
    around a request (a long-running worker must not hand a step a dead connection)."""
    import django_durable.transactions as adapter_module

    calls: list[int] = []
    monkeypatch.setattr(adapter_module, "close_old_connections", lambda: calls.append(1))
    handle = start_workflow(wf.adder, 2, 3)
    assert handle.result(timeout=20) == 5
    assert len(calls) >= 2  # before and after the one step of `adder`


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs a second writer during the transaction"
)
def test_error_after_another_execution_committed_is_the_committed_outcome(web_engine):
    """The core's already-committed branch, through the Django adapter: another execution of
    the step commits first (its Product row and its output row), then this execution's own
    create() meets the unique SKU: the step's outcome is the committed one, not an error."""
    import psycopg

    sku = f"race-{uuid.uuid4().hex[:8]}"
    ctx = types.SimpleNamespace(
        workflow_id=f"wf-{sku}", engine=web_engine, cancel_event=threading.Event()
    )
    settings = connection.settings_dict

    def adopter_commits_first() -> None:
        with psycopg.connect(
            host=settings["HOST"],
            port=settings["PORT"],
            user=settings["USER"],
            dbname=settings["NAME"],
            autocommit=False,
        ) as other:
            other.execute(
                "INSERT INTO orders_product (sku, name, price_cents, stock) VALUES (%s, %s, 1, 1)",
                (sku, sku),
            )
            other.execute(
                "INSERT INTO durable_transaction_outputs (workflow_id, step_id, output, "
                "created_at) VALUES (%s, 1, '7', 0)",
                (ctx.workflow_id,),
            )

    defn = wf.create_product.__durable_step__
    body = defn.fn

    def raced(sku_: str) -> int:
        adopter_commits_first()
        return body(sku_)

    value, error = web_engine.transactions.run(
        ctx, 1, dataclasses.replace(defn, fn=raced), (sku,), {}
    )
    assert (value, error) == (7, None)
    assert Product.objects.filter(sku=sku).count() == 1
