"""Claiming a workflow from its queue sends no cancellation wake-up ('c:'): before schema 14
the status trigger sent one for every workflow that became PENDING, and the worker running it
answered each with a thread and a status query that could find nothing to stop. A cancel
still wakes the execution and stops it."""

from __future__ import annotations

import threading
import uuid

import pytest

from durable_core import Engine, Queue, cancelled, set_default_engine, step, workflow
from durable_core.errors import WorkflowCancelled
from tests.waiting import wait_for

claimed_queue = Queue("tests-claim-notifications")
gate = threading.Event()
running: set[str] = set()


@step
def held(label: str) -> str:
    running.add(label)
    while not gate.is_set() and not cancelled():
        gate.wait(0.02)
    return label


@workflow
def holder(label: str) -> str:
    return held(label)


@workflow
def mailbox() -> None:
    return None


def test_a_claim_sends_no_cancellation_wake_up_and_a_cancel_does(database_url):
    gate.clear()
    running.clear()
    heard: list[tuple[str, str]] = []
    engine = Engine(database_url, executor_id=f"notes-{uuid.uuid4().hex[:6]}", run_scheduler=False)
    engine.launch()
    try:
        engine.notifier.listeners.append(lambda kind, ident: heard.append((kind, ident)))
        set_default_engine(engine)
        handles = [claimed_queue.enqueue(holder, f"n{i}") for i in range(4)]
        wait_for(lambda: len(running) == 4, what="the four claimed workflows to run")
        # Every notification committed so far has reached this engine once a later one has.
        marker = engine.start_workflow(mailbox)
        marker.result(timeout=10)
        seen = engine.notifier.version(("m", marker.workflow_id))
        engine.send(marker.workflow_id, "sync")
        wait_for(lambda: engine.notifier.version(("m", marker.workflow_id)) != seen)
        ids = {h.workflow_id for h in handles}
        assert [note for note in heard if note[0] == "c" and note[1] in ids] == []

        engine.cancel_workflow(handles[0].workflow_id)
        with pytest.raises(WorkflowCancelled):
            handles[0].result(timeout=10)
        gate.set()
        assert [h.result(timeout=10) for h in handles[1:]] == ["n1", "n2", "n3"]
    finally:
        gate.set()
        set_default_engine(None)
        engine.shutdown(timeout=5)
