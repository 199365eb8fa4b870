"""A recv's consume locks the workflow row only when there is a message to take.

Before: every consume share-locked the workflow row, message or not, so the first look of
every recv (which almost always finds nothing, then parks) wrote a tuple lock and waited
behind any concurrent update of the row. A message is still taken, and a wait's mark still
written, only under that lock, so a takeover's claim and a write by the old execution stay
ordered (as a step's checkpoint is)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from durable_core.store import open_store
from durable_core.store.base import OwnershipLost, WorkflowRow


@pytest.fixture
def store(database_url, backend) -> Iterator[Any]:
    if backend != "postgres":
        pytest.skip("row locks are a PostgreSQL matter: SQLite serialises every writer")
    s = open_store(database_url)
    s.migrate()
    yield s
    s.close()


def pending(store: Any, token: str = "token-1") -> str:
    wid = f"wf-{uuid.uuid4().hex[:8]}"
    now = store.now_ms()
    row = WorkflowRow(wid, "waiter", "PENDING", run_token=token, created_at=now, updated_at=now)
    assert store.insert_workflow(row)
    return wid


class Consume(threading.Thread):
    """One consume_message in a thread of its own: its outcome, or the error it raised."""

    def __init__(
        self, store: Any, wid: str, token: str = "token-1", mark: tuple[str, str] | None = None
    ) -> None:
        super().__init__(daemon=True)
        self.args_ = (wid, token, 1, "topic", store.now_ms(), mark)
        self.store = store
        self.outcome: Any = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.outcome = self.store.consume_message(*self.args_)
        except BaseException as exc:
            self.error = exc


def row_locked(url: str, wid: str, run_token: str | None = None) -> psycopg.Connection:
    """A connection holding the row lock an UPDATE of the workflow takes (uncommitted);
    with ``run_token``, that update is a takeover's claim."""
    conn = psycopg.connect(url)
    if run_token is None:
        conn.execute(
            "SELECT 1 FROM durable_workflows WHERE workflow_id = %s FOR NO KEY UPDATE", (wid,)
        )
    else:
        conn.execute(
            "UPDATE durable_workflows SET run_token = %s WHERE workflow_id = %s", (run_token, wid)
        )
    return conn


def test_a_consume_with_no_message_does_not_wait_for_the_row_lock(store, database_url):
    wid = pending(store)
    locker = row_locked(database_url, wid)
    try:
        consume = Consume(store, wid)
        consume.join(20)
        assert not consume.is_alive(), "a consume with no message waited on the workflow row"
        assert consume.error is None and consume.outcome == (False, None)
        stale = Consume(store, wid, token="someone-else")
        stale.join(20)
        assert not stale.is_alive() and isinstance(stale.error, OwnershipLost)
    finally:
        locker.rollback()
        locker.close()


def test_a_message_is_taken_only_under_the_row_lock(store, database_url):
    wid = pending(store)
    assert store.send_message(wid, "topic", '"hello"', None)
    locker = row_locked(database_url, wid)
    try:
        consume = Consume(store, wid)
        consume.join(1.0)
        assert consume.is_alive(), "a message was taken without waiting for the row lock"
    finally:
        locker.rollback()
        locker.close()
    consume.join(20)
    assert consume.error is None and consume.outcome == (True, '"hello"')


def test_a_takeover_committed_meanwhile_leaves_the_message_for_the_new_owner(store, database_url):
    wid = pending(store)
    assert store.send_message(wid, "topic", '"hello"', None)
    claim = row_locked(database_url, wid, run_token="token-2")
    try:
        old = Consume(store, wid)
        old.join(1.0)
        assert old.is_alive()
        claim.commit()  # the takeover lands while the old execution's consume waits
    finally:
        claim.close()
    old.join(20)
    assert isinstance(old.error, OwnershipLost)
    new = Consume(store, wid, token="token-2")
    new.join(20)
    assert new.error is None and new.outcome == (True, '"hello"')


def test_a_wait_mark_is_written_only_under_the_row_lock(store, database_url):
    wid = pending(store)
    mark = ("durable.recv.deadline", '{"kind": "recv", "deadline": 1e12, "topic": "topic"}')
    claim = row_locked(database_url, wid, run_token="token-2")
    try:
        old = Consume(store, wid, mark=mark)
        old.join(1.0)
        assert old.is_alive(), "the mark was written without waiting for the row lock"
        claim.commit()  # a takeover lands while the old execution's consume waits
    finally:
        claim.close()
    old.join(20)
    assert isinstance(old.error, OwnershipLost)
    assert store.load_steps(wid) == []  # the stale execution wrote no mark
    new = Consume(store, wid, token="token-2", mark=mark)
    new.join(20)
    assert new.error is None and new.outcome == (False, None)
    [row] = store.load_steps(wid)
    assert (row.step_id, row.name, row.output) == (-1, *mark)
