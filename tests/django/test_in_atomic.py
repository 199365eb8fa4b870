"""Engine calls inside ``transaction.atomic()`` on the durable alias, on a workflow started in
that same block (what ``ATOMIC_REQUESTS = True`` makes of every view): status and lookups see
it, a message joins the transaction, and a wait that could never end is refused at once.
Also: a request inside a SQLite ``atomic()`` is never held up behind an engine thread that
waits for the write lock the request holds."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from asgiref.sync import async_to_sync
from django.db import connection, transaction
from orders.models import Product

from durable_core import send, start_workflow
from durable_core.errors import WaitInTransaction, WorkflowCancelled, WorkflowNotFound
from tests.django.conftest import wait_for
from tests.django.testapp import tasks
from tests.django.testapp import workflows as wf

try:
    from django.tasks import TaskResultStatus, task_backends
except ImportError:
    from django_tasks import TaskResultStatus, task_backends


class Abort(Exception):
    pass


def test_status_and_lookups_see_a_workflow_started_in_the_block(worker):
    workflow_id = f"st-{uuid.uuid4().hex[:8]}"
    queued_id = f"sq-{uuid.uuid4().hex[:8]}"
    with transaction.atomic():
        handle = start_workflow(wf.waiter, workflow_id=workflow_id)
        status = handle.status()
        assert status.workflow_id == workflow_id
        assert status.name.endswith("waiter")
        assert status.status == "PENDING"
        assert worker.retrieve_workflow(workflow_id).status().status == "PENDING"
        assert worker.list_steps(workflow_id) == []
        queued = wf.test_queue.enqueue(wf.adder, 2, 2, workflow_id=queued_id)
        assert queued.status().status == "ENQUEUED"
        assert queued.status().queue == "django-tests"
    # After the commit it runs as before.
    assert queued.result(timeout=20) == 4
    send(workflow_id, "done", topic="go")
    assert handle.result(timeout=20) == "done"


def test_result_in_the_block_is_refused_at_once_and_the_transaction_goes_on(worker):
    workflow_id = f"rs-{uuid.uuid4().hex[:8]}"
    sku = f"rs-{uuid.uuid4().hex[:8]}"
    with transaction.atomic():
        handle = start_workflow(wf.adder, 3, 4, workflow_id=workflow_id)
        started = time.monotonic()
        with pytest.raises(WaitInTransaction, match="started .* in this transaction"):
            handle.result(timeout=30)
        assert time.monotonic() - started < 5  # refused, not waited for
        Product.objects.create(sku=sku, name=sku, price_cents=1, stock=1)
    assert handle.result(timeout=20) == 7
    assert Product.objects.filter(sku=sku).exists()


def test_result_in_a_block_of_a_workflow_committed_before(worker):
    """PostgreSQL: waited for as anywhere else. SQLite: refused (the block holds the write
    lock the workflow needs); a finished one returns its result on both."""
    finished = start_workflow(wf.adder, 1, 1)
    assert finished.result(timeout=20) == 2
    with transaction.atomic():
        assert finished.result(timeout=5) == 2
    waiting = start_workflow(wf.waiter)
    wait_for(lambda: waiting.status().status == "PENDING")
    with transaction.atomic():
        if connection.vendor == "sqlite":
            with pytest.raises(WaitInTransaction, match="write lock"):
                waiting.result(timeout=30)
        else:
            with pytest.raises(TimeoutError):
                waiting.result(timeout=0.2)
    send(waiting.workflow_id, "go on", topic="go")
    assert waiting.result(timeout=20) == "go on"


def test_result_async_in_the_block_is_refused_at_once(worker):
    """``result_async()`` in a coroutine that ``async_to_sync()`` runs inside the block (a
    sync view's async helper, a TestCase's async test): refused as ``result()`` is. It used
    to look on the engine's own connection from the coroutine's thread and say the workflow
    did not exist."""
    workflow_id = f"ra-{uuid.uuid4().hex[:8]}"
    with transaction.atomic():
        handle = start_workflow(wf.adder, 5, 6, workflow_id=workflow_id)
        started = time.monotonic()
        with pytest.raises(WaitInTransaction, match="started .* in this transaction"):
            async_to_sync(handle.result_async)(timeout=30)
        assert time.monotonic() - started < 5  # refused, not waited for
    assert async_to_sync(handle.result_async)(timeout=20) == 11


def test_result_async_in_a_block_of_a_workflow_committed_before(worker):
    """As ``result()``: PostgreSQL waits, SQLite refuses (the block holds the write lock the
    workflow needs: waiting used to last the whole timeout); a finished one returns."""
    finished = start_workflow(wf.adder, 2, 2)
    assert finished.result(timeout=20) == 4
    waiting = start_workflow(wf.waiter)
    wait_for(lambda: waiting.status().status == "PENDING")
    with transaction.atomic():
        assert async_to_sync(finished.result_async)(timeout=5) == 4
        if connection.vendor == "sqlite":
            with pytest.raises(WaitInTransaction, match="write lock"):
                async_to_sync(waiting.result_async)(timeout=30)
        else:
            with pytest.raises(TimeoutError):
                async_to_sync(waiting.result_async)(timeout=0.2)
    send(waiting.workflow_id, "go on", topic="go")
    assert async_to_sync(waiting.result_async)(timeout=20) == "go on"


def test_send_in_the_block_reaches_a_workflow_started_there(worker):
    workflow_id = f"sd-{uuid.uuid4().hex[:8]}"
    with transaction.atomic():
        handle = start_workflow(wf.waiter, workflow_id=workflow_id)
        send(workflow_id, "hello", topic="go")
    assert handle.result(timeout=20) == "hello"


def test_send_in_a_rolled_back_block_is_never_delivered(worker):
    handle = start_workflow(wf.waiter)
    wait_for(lambda: handle.status().status == "PENDING")
    with pytest.raises(Abort):
        with transaction.atomic():
            send(handle.workflow_id, "rolled back", topic="go")
            raise Abort
    new_id = f"nx-{uuid.uuid4().hex[:8]}"
    with pytest.raises(Abort):
        with transaction.atomic():
            start_workflow(wf.waiter, workflow_id=new_id)
            send(new_id, "never", topic="go")
            raise Abort
    with pytest.raises(WorkflowNotFound):
        worker.retrieve_workflow(new_id)
    send(handle.workflow_id, "committed", topic="go")
    assert handle.result(timeout=20) == "committed"


def test_cancel_in_the_block_commits_or_rolls_back_with_it(worker):
    running = start_workflow(wf.waiter)
    wait_for(lambda: running.status().status == "PENDING")
    with pytest.raises(Abort):
        with transaction.atomic():
            worker.cancel_workflow(running.workflow_id)
            assert running.status().status == "CANCELLED"  # as the block sees it
            raise Abort
    assert running.status().status == "PENDING"
    with transaction.atomic():
        started = start_workflow(wf.waiter)
        worker.cancel_workflow(started.workflow_id)
        worker.cancel_workflow(running.workflow_id)
    with pytest.raises(WorkflowCancelled):
        running.result(timeout=20)
    with pytest.raises(WorkflowCancelled):
        started.result(timeout=20)


def test_task_result_refresh_in_the_block(worker):
    backend = task_backends["default"]
    with transaction.atomic():
        result = tasks.multiply.enqueue(6, 7)
        assert backend.get_result(result.id).status == TaskResultStatus.READY
        result.refresh()
        assert result.status == TaskResultStatus.READY

    def finished():
        result.refresh()
        return result.is_finished

    wait_for(finished)
    assert result.return_value == 42


@pytest.mark.skipif(
    "connection.vendor != 'sqlite'", reason="PostgreSQL has no database-wide write lock"
)
def test_request_in_sqlite_atomic_is_not_held_up_by_an_engine_thread_waiting_for_its_lock(
    transactional_db,
):
    """An engine thread that writes while a request's atomic() holds SQLite's write lock waits
    for that lock (BEGIN IMMEDIATE, retried). It used to hold the store's lock meanwhile, so
    the request's own next engine call (a status read, a send) waited for the engine thread,
    which waited for the request: a deadlock until the retries ran out (minutes)."""
    from django_durable.engine import build_engine

    engine = build_engine(executor_id=f"deadlock-{uuid.uuid4().hex[:6]}").launch()
    try:
        before = engine.start_workflow(wf.waiter)  # committed before the request
        wait_for(lambda: before.status().status == "PENDING")
        writer_done = threading.Event()
        request_done = threading.Event()
        outcome: dict = {}

        def engine_thread_writes() -> None:
            # A message from another thread (not in the request's atomic): the store begins
            # its own transaction and waits for the file's write lock.
            try:
                engine.send(before.workflow_id, "from the engine thread", topic="go")
            finally:
                writer_done.set()

        def request() -> None:
            try:
                with transaction.atomic():
                    sku = f"dl-{uuid.uuid4().hex[:8]}"
                    Product.objects.create(sku=sku, name=sku, price_cents=1, stock=1)
                    writer = threading.Thread(target=engine_thread_writes, daemon=True)
                    writer.start()
                    # The engine thread is waiting inside the store once it holds its lock.
                    wait_for(lambda: _store_lock_taken(engine), what="the engine thread to wait")
                    started = engine.start_workflow(wf.waiter)
                    outcome["started"] = started.status().status
                    outcome["before"] = before.status().status
                    engine.send(started.workflow_id, "in the request", topic="go")
                    outcome["handle"] = started
            except BaseException as exc:  # reported by the test thread
                outcome["error"] = exc
            finally:
                connection.close()
                request_done.set()

        thread = threading.Thread(target=request, daemon=True)
        thread.start()
        if not request_done.wait(15):
            engine.store.give_up_retrying_after(0)  # break the deadlock, then fail
            request_done.wait(30)
            pytest.fail("the request inside atomic() waited for an engine thread (deadlock)")
        assert "error" not in outcome, outcome.get("error")
        assert (outcome["started"], outcome["before"]) == ("PENDING", "PENDING")
        assert writer_done.wait(30)
        assert before.result(timeout=20) == "from the engine thread"
        assert outcome["handle"].result(timeout=20) == "in the request"
    finally:
        engine.shutdown(timeout=5)


def _store_lock_taken(engine) -> bool:
    lock = engine.store._lock  # the SQLite store's lock on its main connection
    if lock.acquire(blocking=False):
        lock.release()
        return False
    return True
