"""A worker draining a backlog claims in batches: once its threads are busy, it waits until a
quarter of its capacity is free (the running workflows' finishes wake it) instead of claiming
the one or two slots each finish frees, a claim transaction per workflow or two."""

from __future__ import annotations

import pytest

from durable_core import Queue, workflow
from durable_core.store.postgres import PostgresStore
from durable_core.store.sqlite import SQLiteStore
from tests.backlogs import backlog_worker, enqueue_backlog

backlog = Queue("tests-claim-batches")


@workflow
def drained(i: int) -> int:
    return i


@pytest.fixture
def claims(monkeypatch):
    """The size of every claim of the backlog's queue that took something."""
    sizes: list[int] = []
    for cls in (PostgresStore, SQLiteStore):
        original = cls.claim_from_queue

        def counting(self, claim, executor_id, token_prefix, _original=original):
            rows = _original(self, claim, executor_id, token_prefix)
            if rows and claim.name == backlog.name:
                sizes.append(len(rows))
            return rows

        monkeypatch.setattr(cls, "claim_from_queue", counting)
    return sizes


def test_a_backlog_is_claimed_in_batches(database_url, claims):
    n = 300
    enqueued = enqueue_backlog(database_url, backlog, [(drained, [(i,) for i in range(n)])])
    with backlog_worker(database_url, backlog) as worker:
        handles = [worker.retrieve_workflow(h.workflow_id) for h in enqueued]
        assert [h.result(timeout=60) for h in handles] == list(range(n))
    assert sum(claims) == n
    # 16 threads: every claim but the first and the tail takes at least 4 (a quarter).
    assert len(claims) <= 1 + n // 4 + 4, claims


def test_a_claim_tells_which_workflows_have_steps_where_it_can(database_url):
    """PostgreSQL's claim reports, per row, whether steps are recorded (so a batch of new
    workflows needs no step read); SQLite's does not know (None: the steps are read)."""
    from durable_core.store import QueueClaim, WorkflowRow, open_store

    store = open_store(database_url)
    try:
        store.migrate()
        t = store.now_ms()
        rows = [
            WorkflowRow(f"s-{i}", "stepped", "ENQUEUED", "stepq", "[]", created_at=t + i)
            for i in range(3)
        ]
        with store.transaction() as conn:
            store.insert_workflows(rows, conn)
            store.execute(
                conn,
                "INSERT INTO durable_steps (workflow_id, step_id, name) VALUES ('s-1', 1, 'x')",
            )
        claim = QueueClaim("stepq", 10, None, None, False, ("stepped",), ("v",))
        claimed = store.claim_from_queue(claim, "exec-1", "tok:")
        flags = {r.workflow_id: r.has_steps for r in claimed}
        if store.dialect == "postgresql":
            assert flags == {"s-0": False, "s-1": True, "s-2": False}
        else:
            assert flags == {"s-0": None, "s-1": None, "s-2": None}
    finally:
        store.close()


def test_the_one_statement_claim_defers_to_stored_settings(database_url):
    """A FIFO queue without declared limits is claimed in one statement on PostgreSQL; a
    stored pause or limit makes that statement claim nothing and the claim transaction apply
    it (both backends: the transactional claim is SQLite's only one)."""
    from durable_core.store import QueueClaim, WorkflowRow, open_store

    store = open_store(database_url)
    try:
        store.migrate()
        t = store.now_ms()
        rows = [
            WorkflowRow(f"d-{i}", "stored", "ENQUEUED", "settingsq", "[]", created_at=t + i)
            for i in range(6)
        ]
        rows.append(
            WorkflowRow("d-due", "stored", "ENQUEUED", "settingsq", "[]", created_at=t + 9,
                        not_before=t - 5)
        )  # fmt: skip
        with store.transaction() as conn:
            store.insert_workflows(rows, conn)
        claim = QueueClaim("settingsq", 10, None, None, False, ("stored",), ("v",))
        store.change_queue_settings("settingsq", {"paused": 1})
        assert store.claim_from_queue(claim, "exec-1", "a:") == []
        store.change_queue_settings("settingsq", {"paused": 0, "concurrency": 2})
        first = store.claim_from_queue(claim, "exec-1", "b:")
        assert [r.workflow_id for r in first] == ["d-due", "d-0"]  # due delayed ones first
        store.change_queue_settings("settingsq", {"concurrency": None})
        rest = store.claim_from_queue(claim, "exec-1", "c:")
        assert [r.workflow_id for r in rest] == [f"d-{i}" for i in range(1, 6)]
        assert all(r.run_token == f"c:{r.workflow_id}" for r in rest)
    finally:
        store.close()
