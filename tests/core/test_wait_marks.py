"""A waiting recv and a waiting get_event leave marks that say which they are and what they
wait for (the topic; the other workflow and the event key) with their deadline, so the
dashboard and the admin can tell them apart. A mark written the old way (the bare deadline
under the recv's name, by a get_event too) still replays. Both backends."""

from __future__ import annotations

import uuid

from durable_core import get_event, recv, set_event, workflow
from durable_core.integration import read_wait_mark
from durable_core.messaging import DEADLINE_MARK, EVENT_DEADLINE_MARK
from tests.statements import captured
from tests.waiting import wait_for


@workflow
def inbox(topic: str) -> object:
    return recv(topic, timeout=600)


@workflow
def reader(target: str, key: str) -> object:
    return get_event(target, key, timeout=600)


@workflow
def publisher() -> str:
    recv("go", timeout=600)
    set_event("ready", "yes")
    return "published"


def _mark(engine, workflow_id: str):
    wait_for(lambda: engine.store.load_steps(workflow_id), 30, "the wait mark")
    [mark] = engine.store.load_steps(workflow_id)
    assert mark.step_id == -1
    return mark


def test_a_recv_mark_names_its_topic_and_deadline(engine):
    before = engine.clock.time()
    handle = engine.start_workflow(inbox, "invoices")
    mark = _mark(engine, handle.workflow_id)
    assert mark.name == DEADLINE_MARK
    wait = read_wait_mark(mark.output, engine.serializer)
    assert (wait.kind, wait.topic, wait.workflow_id, wait.key) == ("recv", "invoices", None, None)
    assert before + 590 < wait.deadline < engine.clock.time() + 610
    assert wait.describe() == "a message on topic 'invoices'"
    engine.send(handle.workflow_id, "paid", topic="invoices")
    assert handle.result(timeout=30) == "paid"


def test_a_recv_records_its_mark_with_its_first_look(engine, backend, monkeypatch):
    """The mark costs no statement of its own: on PostgreSQL the consume that found no
    message inserts it (before: a second INSERT, one more round trip per waiting recv); on
    SQLite it is written in the consume's transaction, before its COMMIT (before: after it,
    as a statement of its own)."""
    with captured(engine.store) as seen:
        if backend == "sqlite":  # the transactions' COMMITs, in order with the statements
            commit = engine.store._commit
            monkeypatch.setattr(
                engine.store, "_commit", lambda: (seen.append(("COMMIT", ())), commit())
            )
        handle = engine.start_workflow(inbox, "invoices")
        _mark(engine, handle.workflow_id)
    carrying = [i for i, (_, params) in enumerate(seen) if DEADLINE_MARK in params]
    assert len(carrying) == 1, [seen[i][0] for i in carrying]
    at = carrying[0]
    if backend == "postgres":
        assert "FROM durable_notifications" in seen[at][0]
    else:  # other threads' reads may come between: look back to the consume's SELECT
        looks = [i for i, (sql, _) in enumerate(seen[:at]) if "FROM durable_notifications" in sql]
        assert looks, "no consume before the mark"
        between = [sql for sql, _ in seen[looks[-1] : at]]
        assert "COMMIT" not in between, "the mark was written after the consume's transaction"
    engine.send(handle.workflow_id, "paid", topic="invoices")
    assert handle.result(timeout=30) == "paid"


def test_a_get_event_mark_names_the_workflow_and_key(engine):
    target = engine.start_workflow(publisher)
    handle = engine.start_workflow(reader, target.workflow_id, "ready")
    mark = _mark(engine, handle.workflow_id)
    assert mark.name == EVENT_DEADLINE_MARK
    wait = read_wait_mark(mark.output, engine.serializer)
    assert (wait.kind, wait.workflow_id, wait.key, wait.topic) == (
        "get_event",
        target.workflow_id,
        "ready",
        None,
    )
    assert wait.deadline > engine.clock.time() + 590
    assert wait.describe() == f"event 'ready' of workflow {target.workflow_id}"
    engine.send(target.workflow_id, None, topic="go")
    assert handle.result(timeout=30) == "yes"


def test_a_get_event_that_began_waiting_with_an_old_mark_replays(engine):
    """Written by an engine before the marks had kinds: a bare deadline, the recv's name."""
    target = engine.start_workflow(publisher)
    handle = engine.start_workflow(reader, target.workflow_id, "ready")
    mark = _mark(engine, handle.workflow_id)
    deadline = read_wait_mark(mark.output).deadline
    engine.cancel_workflow(handle.workflow_id)
    wait_for(lambda: handle.status().status == "CANCELLED", 30, "the cancel")
    engine.store.run(
        "UPDATE durable_steps SET name = %s, output = %s WHERE workflow_id = %s AND step_id = -1",
        (DEADLINE_MARK, engine.serializer.dumps(deadline), handle.workflow_id),
    )
    old = read_wait_mark(engine.store.load_steps(handle.workflow_id)[0].output, engine.serializer)
    assert (old.kind, old.deadline) == (None, deadline)
    assert old.describe() == "a message or an event"
    engine.resume_workflow(handle.workflow_id)
    engine.send(target.workflow_id, None, topic="go")
    assert handle.result(timeout=30) == "yes"  # not NonDeterministicWorkflow


def test_marks_are_json_whatever_the_serializer(database_url):
    from durable_core import Engine

    with Engine(
        database_url, serializer="pickle", run_scheduler=False, executor_id=uuid.uuid4().hex
    ) as eng:
        handle = eng.start_workflow(inbox, "t")
        mark = _mark(eng, handle.workflow_id)
        wait = read_wait_mark(mark.output)  # no serializer needed (the admin has none)
        assert (wait.kind, wait.topic) == ("recv", "t")
        eng.send(handle.workflow_id, {"x": 1}, topic="t")
        assert handle.result(timeout=30) == {"x": 1}
