"""Group commit of finishes (``store/group_commit.py``): workflows that finish while another
finish statement is in flight are written together in the next one, and each caller still
gets its own row's answer: a finish whose workflow is no longer this execution's is refused
to that caller alone, and the other finishes of its batch are written whole."""

from __future__ import annotations

import threading
import uuid

import pytest

from durable_core import Queue, step, workflow
from durable_core.store import WorkflowRow, open_store
from durable_core.store.group_commit import GroupCommit
from tests.backlogs import backlog_worker, enqueue_backlog
from tests.statements import captured
from tests.waiting import wait_for

# -- the mechanism ---------------------------------------------------------------------------


class _Writes:
    """A ``write_batch`` that records its batches; the first one waits for ``release``."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(self, items):
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(10)
        if "boom" in items:
            raise RuntimeError("the batch with boom failed")
        return [f"done {item}" for item in items]


def _in_threads(group: GroupCommit, items: list[str]) -> tuple[list[threading.Thread], dict]:
    outcomes: dict[str, object] = {}

    def write(item: str) -> None:
        try:
            outcomes[item] = group.write(item)
        except Exception as exc:
            outcomes[item] = exc

    threads = [threading.Thread(target=write, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    return threads, outcomes


def test_a_write_with_nothing_in_flight_goes_out_at_once_alone():
    writes = _Writes()
    writes.release.set()
    group = GroupCommit(writes, key=lambda item: item)
    assert group.write("a") == "done a"
    assert group.write("b") == "done b"
    assert writes.batches == [["a"], ["b"]]


def test_writes_made_during_one_in_flight_go_in_the_next_batch_each_with_its_own_result():
    writes = _Writes()
    group = GroupCommit(writes, key=lambda item: item.split()[0])
    first, first_outcome = _in_threads(group, ["w0"])
    assert writes.entered.wait(10)
    # w2 twice: one row is never named twice in a batch, so the second waits for the next.
    items = ["w1", "w2", "w2 again", "w3"]
    threads, outcomes = _in_threads(group, items)
    wait_for(lambda: group.waiting == 4, timeout=10, what="the writes to queue up")
    assert not outcomes  # none returned before the write in flight did
    writes.release.set()
    for thread in first + threads:
        thread.join(10)
    assert first_outcome == {"w0": "done w0"}
    assert outcomes == {item: f"done {item}" for item in items}
    assert writes.batches[0] == ["w0"]
    assert sorted(writes.batches[1]) == ["w1", "w2", "w3"]
    assert writes.batches[2:] == [["w2 again"]]
    assert group.waiting == 0


def test_a_failed_batch_raises_in_each_of_its_callers_and_not_in_others():
    writes = _Writes()
    group = GroupCommit(writes, key=lambda item: item, max_batch=2)
    first, first_outcome = _in_threads(group, ["w0"])
    assert writes.entered.wait(10)
    threads, outcomes = _in_threads(group, ["boom"])
    wait_for(lambda: group.waiting == 1, timeout=10, what="boom to queue up")
    more, more_outcomes = _in_threads(group, ["w1", "w2"])
    wait_for(lambda: group.waiting == 3, timeout=10, what="the writes to queue up")
    writes.release.set()
    for thread in first + threads + more:
        thread.join(10)
    assert first_outcome == {"w0": "done w0"}
    # max_batch=2: boom and w1 in one batch (both fail), w2 in the next.
    assert isinstance(outcomes["boom"], RuntimeError)
    assert isinstance(more_outcomes["w1"], RuntimeError)
    assert more_outcomes["w2"] == "done w2"
    assert [len(b) for b in writes.batches] == [1, 2, 1]


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommit(lambda items: items, key=lambda item: item, max_batch=0)


# -- the store's finishes --------------------------------------------------------------------


@pytest.fixture
def store(database_url):
    opened = open_store(database_url)
    opened.migrate()
    yield opened
    opened.close()


def _pending(store, n: int) -> list[str]:
    t = store.now_ms()
    ids = [f"gc-{uuid.uuid4().hex[:8]}-{i}" for i in range(n)]
    rows = [
        WorkflowRow(wid, "gc", "PENDING", None, "[]", run_token=f"token {wid}", created_at=t)
        for wid in ids
    ]
    with store.transaction() as conn:
        store.insert_workflows(rows, conn)
    return ids


def _step(store, step_id: int = 1) -> tuple:
    t = store.now_ms()
    return (step_id, "gc_step", f'"out {step_id}"', None, None, t, t, 1)


def _finish_concurrently(store, finishes: list[tuple]) -> tuple[dict[str, bool], list[str]]:
    """Each finish in a thread of its own. On PostgreSQL the first is held in flight (its
    row locked by another transaction) until the others wait behind it, so that they form one
    batch; SQLite writes each alone. Returns each caller's answer and the statements run."""
    answers: dict[str, bool] = {}

    def finish(args: tuple) -> None:
        answers[args[0]] = store.finish_workflow(*args)

    threads = [threading.Thread(target=finish, args=(args,)) for args in finishes]
    with captured(store) as seen:
        if store.finishes is None:
            for thread in threads:
                thread.start()
        else:
            with store.transaction() as locker:
                locker.execute(
                    "SELECT 1 FROM durable_workflows WHERE workflow_id = %s FOR UPDATE",
                    (finishes[0][0],),
                )
                threads[0].start()
                wait_for(lambda: seen, timeout=10, what="the first finish to be in flight")
                for thread in threads[1:]:
                    thread.start()
                wait_for(
                    lambda: store.finishes.waiting == len(finishes) - 1,
                    timeout=10,
                    what="the other finishes to wait behind the first",
                )
        for thread in threads:
            thread.join(30)
    return answers, [sql for sql, _ in seen if "durable_workflows" in sql]


def _state(store, ids: list[str]) -> dict[str, tuple]:
    rows = store.fetchall(
        "SELECT w.workflow_id, w.status, w.output, COUNT(s.step_id) FROM durable_workflows w "
        "LEFT JOIN durable_steps s ON s.workflow_id = w.workflow_id "
        f"WHERE w.workflow_id IN ({', '.join(['%s'] * len(ids))}) "
        "GROUP BY w.workflow_id, w.status, w.output",
        ids,
    )
    return {r[0]: tuple(r[1:]) for r in rows}


def test_a_lost_finish_in_a_batch_is_refused_to_its_caller_alone(store):
    ids = _pending(store, 6)
    store.set_status([ids[5]], "CANCELLED", ["PENDING"])  # cancelled: no longer ours either
    finishes = [
        (ids[0], f"token {ids[0]}", "SUCCESS", '"r0"', None, _step(store)),
        (ids[1], f"token {ids[1]}", "SUCCESS", '"r1"', None, _step(store)),
        (ids[2], "a superseded run token", "SUCCESS", '"r2"', None, _step(store)),
        (ids[3], f"token {ids[3]}", "SUCCESS", '"r3"', None, None),
        (ids[4], f"token {ids[4]}", "ERROR", None, '{"message": "e4"}', _step(store, 2)),
        (ids[5], f"token {ids[5]}", "SUCCESS", '"r5"', None, _step(store)),
    ]
    answers, statements = _finish_concurrently(store, finishes)
    assert answers == dict(zip(ids, [True, True, False, True, True, False], strict=True))
    assert _state(store, ids) == {
        ids[0]: ("SUCCESS", '"r0"', 1),
        ids[1]: ("SUCCESS", '"r1"', 1),
        ids[2]: ("PENDING", None, 0),  # nothing written: neither outcome nor step
        ids[3]: ("SUCCESS", '"r3"', 0),
        ids[4]: ("ERROR", None, 1),
        ids[5]: ("CANCELLED", None, 0),
    }
    if store.dialect == "postgresql":
        assert len(statements) == 2, statements  # the one held in flight, then the batch


def test_a_batch_that_meets_a_recorded_step_writes_every_other_finish(store):
    """The step INSERT of a finish whose step is recorded already fails the whole statement;
    the batch is then written one by one, and only that finish is refused."""
    ids = _pending(store, 5)
    store.record_step(ids[2], f"token {ids[2]}", 1, "gc_step", '"earlier"', None, None, 0)
    finishes = [
        (wid, f"token {wid}", "SUCCESS", f'"r{i}"', None, _step(store)) for i, wid in enumerate(ids)
    ]
    answers, statements = _finish_concurrently(store, finishes)
    assert answers == {wid: wid != ids[2] for wid in ids}
    state = _state(store, ids)
    assert state.pop(ids[2]) == ("PENDING", None, 1)  # the earlier step, kept as it was
    assert state == {wid: ("SUCCESS", f'"r{i}"', 1) for i, wid in enumerate(ids) if i != 2}
    (kept,) = store.load_steps(ids[2])
    assert kept.output == '"earlier"'
    if store.dialect == "postgresql":
        assert len(statements) == 1 + 1 + 4, statements  # held, the failed batch, each alone


# -- a drained backlog -----------------------------------------------------------------------

backlog = Queue("tests-group-commit")


@step
def gc_add(i: int) -> int:
    return i + 1


@workflow
def gc_sync(i: int) -> int:
    return gc_add(i)


@step
async def gc_add_async(i: int) -> int:
    return i + 1


@workflow
async def gc_async(i: int) -> int:
    return await gc_add_async(i)


def test_a_drained_backlog_of_sync_and_async_workflows_finishes_in_batches(database_url):
    n = 150
    # Paused until the worker's statements are counted.
    batches = [(gc_sync, [(i,) for i in range(n)]), (gc_async, [(i,) for i in range(n, 2 * n)])]
    enqueued = enqueue_backlog(database_url, backlog, batches, paused=True)
    worker = backlog_worker(database_url, backlog)
    worker.launch()
    try:
        handles = [worker.retrieve_workflow(h.workflow_id) for h in enqueued]
        with captured(worker.store) as seen:
            worker.resume_queue(backlog.name)
            assert [h.result(timeout=60) for h in handles] == [i + 1 for i in range(2 * n)]
        for handle in handles[:: n // 5]:
            (only,) = worker.list_steps(handle.workflow_id)
            assert only.step_id == 1
    finally:
        worker.shutdown(timeout=10)
    finishes = [sql for sql, _ in seen if "SET status = " in sql and "output = " in sql]
    if worker.url.dialect == "postgresql":
        # 16 threads finish side by side: batches form (one statement per finish without).
        assert len(finishes) < 2 * n, len(finishes)
    else:
        assert len(finishes) == 2 * n  # SQLite: one each
