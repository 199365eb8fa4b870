"""Hot statements stay O(1) in history size: the plans use the indexes that make them so, and
housekeeping (deadline expiry, garbage collection, SQLite reads) stays out of the writers' way.

The benchmark that measures them at a million rows is ``python -m benchmarks.history``; here
the plans are checked on small tables, with statistics (PostgreSQL) arranged to make the
choice meaningful.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from durable_core.store import QueueClaim, SQLStore, open_store
from tests.statements import captured

NAME = "scale_noop"
QUEUE = "scale_q"
COLUMNS = (
    "workflow_id, name, status, queue_name, inputs, executor_id, run_token, "
    "application_version, created_at, updated_at, started_at, finished_at, deadline"
)


@pytest.fixture
def store(database_url) -> Iterator[SQLStore]:
    s = open_store(database_url, pool_size=4)
    s.migrate()
    yield s
    s.close()


def insert_rows(store: SQLStore, rows: list[tuple]) -> None:
    marks = ", ".join(["%s"] * len(COLUMNS.split(",")))
    with store.transaction() as conn:
        for row in rows:
            store.execute(conn, f"INSERT INTO durable_workflows ({COLUMNS}) VALUES ({marks})", row)


def history(n: int, start: int = 0) -> list[tuple]:
    """Finished workflows, half of them in the queue (a long-lived queue's history)."""
    return [
        (f"h{i}", NAME, "SUCCESS", QUEUE if i % 2 else None, "[]", "old", "t", "v",
         1000 + i, 1000 + i, 1000 + i, 1000 + i, None)
        for i in range(start, start + n)
    ]  # fmt: skip


def in_flight(n: int, status: str, deadline: int | None = None) -> list[tuple]:
    return [
        (f"{status[0].lower()}{i}", NAME, status, QUEUE if status == "ENQUEUED" else None, "[]",
         "live" if status == "PENDING" else None, f"tok{i}" if status == "PENDING" else None,
         "v", 10**9 + i, 10**9 + i, None, None, deadline)
        for i in range(n)
    ]  # fmt: skip


def plan(store: SQLStore, sql: str, params: tuple) -> str:
    with store.connection() as conn:
        if store.dialect == "postgresql":
            rows = conn.execute("EXPLAIN (COSTS OFF) " + sql, params).fetchall()
            return "\n".join(r[0] for r in rows)
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql.replace("%s", "?"), params).fetchall()
        return "\n".join(r[-1] for r in rows)


def analyze(store: SQLStore) -> None:
    if store.dialect == "postgresql":
        store.run("ANALYZE")


def the_statement(seen: list[tuple[str, tuple]], starts: str) -> tuple[str, tuple]:
    matches = [(sql, p) for sql, p in seen if " ".join(sql.split()).startswith(starts)]
    assert matches, f"no statement starting with {starts!r} in {[s for s, _ in seen]}"
    return matches[0]


def test_fifo_claim_reads_the_claim_index_in_order(store):
    """Before: ORDER BY created_at was served by no index together with the queue/status
    filter (PostgreSQL walked history from its oldest row; SQLite sorted the backlog)."""
    insert_rows(store, history(3000) + in_flight(30, "ENQUEUED"))
    analyze(store)
    claim = QueueClaim(QUEUE, 2, None, None, False, (NAME,), ("v",))
    with captured(store) as seen:
        claimed = store.claim_from_queue(claim, "exec", "tok-")
    assert [w.workflow_id for w in claimed] == ["e0", "e1"]
    for sql, params in seen:
        if sql.startswith("SELECT workflow_id FROM durable_workflows"):
            text = plan(store, sql, params)
            assert "ready_idx" in text or "delayed_idx" in text, text
            assert "TEMP B-TREE" not in text and "Sort" not in text, text
        if "FROM picked" in sql:  # PostgreSQL: the whole FIFO claim in one statement
            text = plan(store, sql, params)
            assert "ready_idx" in text and "delayed_idx" in text, text
            assert "Seq Scan on durable_workflows" not in text, text
            # The only sort is of the picked candidates (at most twice the claim's size).
            assert text.count("Sort Key") == 1 and "Sort Key: (0), due.rank" in text, text
    assert any(sql.startswith("SELECT workflow_id FROM") or "FROM picked" in sql for sql, _ in seen)


def test_claims_ignore_the_name_index_beside_a_history_of_other_names(store):
    """Before: against finished workflows of other names, PostgreSQL judged the claim's names
    rare and answered the FIFO claim by ANDing the ready and name indexes, then sorting every
    ready row of the queue (20k backlog next to 1M finished: 11.9 ms a claim against 2.2 ms,
    the drain 0.7x of the drain without history)."""
    other = [(f"o{i}", "other", *row[2:]) for i, row in enumerate(history(3000))]
    insert_rows(store, other + in_flight(300, "ENQUEUED"))
    analyze(store)
    # An engine claims for every workflow name it has registered, not just one.
    for priority in (False, True):
        claim = QueueClaim(QUEUE, 20, None, None, priority, (NAME, "another"), ("v",))
        with captured(store) as seen:
            claimed = store.claim_from_queue(claim, "exec", f"tok{priority}-")
        assert len(claimed) == 20
        scans = [
            (q, p) for q, p in seen if "FROM picked" in q or q.startswith("SELECT workflow_id")
        ]
        assert scans
        for sql, params in scans:
            text = plan(store, sql, params)
            assert "name_idx" not in text and "BitmapAnd" not in text, text


def test_a_delayed_backlog_at_the_head_of_a_queue_is_not_walked(store):
    """Before: not-yet-due workflows created before the ready ones sat at the head of the
    claim index, and every claim walked past all of them."""
    delayed = [(*r[:12], 10**15) for r in in_flight(3000, "ENQUEUED")]
    ready = [(f"r{i}", *r[1:]) for i, r in enumerate(in_flight(3, "ENQUEUED"))]
    ready = [(*r[:8], 2 * 10**9 + i, *r[9:]) for i, r in enumerate(ready)]
    due = [("due0", *delayed[0][1:8], 3 * 10**9, 3 * 10**9, None, None, None)]
    insert_rows(store, history(2000) + delayed + ready + due)
    store.run("UPDATE durable_workflows SET not_before = deadline WHERE workflow_id LIKE 'e%%'")
    store.run(
        "UPDATE durable_workflows SET deadline = NULL, not_before = 5 WHERE workflow_id = 'due0'"
    )
    analyze(store)
    claim = QueueClaim(QUEUE, 3, None, None, False, (NAME,), ("v",))
    with captured(store) as seen:
        claimed = store.claim_from_queue(claim, "exec", "tok-")
    assert [w.workflow_id for w in claimed] == ["due0", "r0", "r1"]  # due first, then FIFO
    ready_sql = [(q, p) for q, p in seen if "not_before IS NULL" in q]
    assert ready_sql
    if store.dialect == "postgresql":
        with store.connection() as conn, conn.transaction(force_rollback=True):
            rows = conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) " + ready_sql[0][0],
                ready_sql[0][1],
            ).fetchall()
        text = "\n".join(r[0] for r in rows)
        assert "ready_idx" in text and "Rows Removed by Filter" not in text, text
    else:
        assert "ready_idx" in plan(store, *ready_sql[0])


def test_the_priority_claim_does_not_walk_a_delayed_backlog(store):
    """Before: the priority claim read (queue, status, priority, created_at) and filtered
    ``not_before`` row by row, so not-yet-due entries of the best priority were walked by
    every claim. Now ready rows come from an index without delayed ones, due delayed rows
    from the delayed index, merged by (priority, created_at)."""
    delayed = [(*r[:12], 10**15) for r in in_flight(3000, "ENQUEUED")]
    ready = [(f"r{i}", *r[1:]) for i, r in enumerate(in_flight(3, "ENQUEUED"))]
    ready = [(*r[:8], 2 * 10**9 + i, *r[9:]) for i, r in enumerate(ready)]
    due = [("due0", *delayed[0][1:8], 3 * 10**9, 3 * 10**9, None, None, None)]
    insert_rows(store, history(2000) + delayed + ready + due)
    store.run("UPDATE durable_workflows SET not_before = deadline WHERE workflow_id LIKE 'e%%'")
    store.run(
        "UPDATE durable_workflows SET deadline = NULL, not_before = 5 WHERE workflow_id = 'due0'"
    )
    store.run("UPDATE durable_workflows SET priority = 1 WHERE workflow_id = 'r0'")
    analyze(store)
    claim = QueueClaim(QUEUE, 3, None, None, True, (NAME,), ("v",))
    with captured(store) as seen:
        claimed = store.claim_from_queue(claim, "exec", "tok-")
    # Priority 0 before 1; within a priority, oldest first (due0 is newer than r1 and r2).
    assert [w.workflow_id for w in claimed] == ["r1", "r2", "due0"]
    selects = [(q, p) for q, p in seen if q.startswith("SELECT workflow_id, priority")]
    ready_sql = [(q, p) for q, p in selects if "not_before IS NULL" in q]
    assert len(selects) == 2 and ready_sql
    if store.dialect == "postgresql":
        with store.connection() as conn:
            rows = conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) " + ready_sql[0][0],
                ready_sql[0][1],
            ).fetchall()
        text = "\n".join(r[0] for r in rows)
        assert "priority_ready_idx" in text and "Rows Removed by Filter" not in text, text
        assert "Sort" not in text, text
    else:
        text = plan(store, *ready_sql[0])
        assert "priority_ready_idx" in text and "TEMP B-TREE" not in text, text


def test_deadline_expiry_probes_only_rows_with_a_deadline(store):
    insert_rows(store, history(2000) + in_flight(200, "PENDING") + in_flight(5, "ENQUEUED", 1))
    analyze(store)
    with captured(store) as seen:
        assert sorted(store.expire_deadlines()) == [f"e{i}" for i in range(5)]
    text = plan(store, *the_statement(seen, "SELECT 1 FROM durable_workflows"))
    assert "durable_workflows_deadline_idx" in text, text
    # None due: one index probe on the read path, no write at all.
    with captured(store) as seen:
        assert store.expire_deadlines() == []
    assert [s for s, _ in seen if "UPDATE" in s] == []


def test_delayed_poll_and_recovery_scans_use_their_indexes(store):
    insert_rows(store, history(2000) + in_flight(50, "PENDING") + in_flight(50, "ENQUEUED"))
    store.run("UPDATE durable_workflows SET not_before = 5 WHERE workflow_id = 'e7'")
    analyze(store)
    with captured(store) as seen:
        assert store.earliest_delayed(QUEUE) == 5
        assert len(store.pending_of_executor("live", ("v",))) == 50  # the recovery scan
    assert "durable_workflows_delayed_idx" in plan(store, *the_statement(seen, "SELECT MIN"))
    assert "durable_workflows_pending_idx" in plan(
        store, *the_statement(seen, "SELECT workflow_id, name, status")
    )


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({"status": ["ERROR"]}, "durable_workflows_status_created_idx"),
        ({"name": "other"}, "durable_workflows_name_idx"),
        ({"queue": QUEUE}, "durable_workflows_queue_created_idx"),
        ({"created_after": 1500, "created_before": 1600}, "durable_workflows_created_idx"),
    ],
)
def test_listings_use_an_index_per_filter(store, filters, index):
    """Before: a listing by name was a sequential scan (SQLite: by status too)."""
    rows = history(3000)
    rows[::50] = [(r[0], "other", "ERROR", *r[3:]) for r in rows[::50]]
    insert_rows(store, rows)
    analyze(store)
    with captured(store) as seen:
        assert store.list_workflows(limit=10, **filters)
    text = plan(store, *the_statement(seen, "SELECT workflow_id, name"))
    assert index in text, text
    assert "TEMP B-TREE" not in text and "Sort" not in text, text


def test_keyset_pages_match_offset_pages(store):
    insert_rows(store, history(57))
    store.run("UPDATE durable_workflows SET created_at = 7 WHERE workflow_id LIKE 'h1%%'")
    for newest_first in (True, False):
        by_offset = [
            w.workflow_id
            for page in range(0, 60, 10)
            for w in store.list_workflows(limit=10, offset=page, newest_first=newest_first)
        ]
        by_cursor: list[str] = []
        after = None
        while True:
            page = store.list_workflows(limit=10, after=after, newest_first=newest_first)
            if not page:
                break
            by_cursor.extend(w.workflow_id for w in page)
            after = (page[-1].created_at, page[-1].workflow_id)
        assert by_cursor == by_offset
        assert len(set(by_cursor)) == 57


def test_unknown_status_lists_nothing(store):
    insert_rows(store, history(3))
    assert store.list_workflows(status=["NOT_A_STATUS"]) == []
    assert len(store.list_workflows(status=["SUCCESS", "NOT_A_STATUS"])) == 3


def test_ownership_check_is_planned_on_the_primary_key_with_stale_statistics(store):
    """Statistics taken with no PENDING rows, then thousands parked: a check that named the
    status plainly could be planned on a status index and walk every parked workflow."""
    insert_rows(store, history(2000))
    analyze(store)
    insert_rows(store, in_flight(3000, "PENDING"))
    with captured(store) as seen:
        store.record_step("p17", "tok17", 1, "noop", "1", None, None, 0)
        assert store.finish_workflow("p18", "tok18", "SUCCESS", "1", None)
    for starts in ("INSERT INTO durable_steps", "UPDATE durable_workflows"):
        text = plan(store, *the_statement(seen, starts))
        assert "pkey" in text or "sqlite_autoindex_durable_workflows_1" in text, text
        assert "pending_idx" not in text and "status_created_idx" not in text, text


def test_a_batch_of_finishes_is_planned_on_the_primary_key(store):
    """Group commit's multi-row finish (PostgreSQL): each row found by its primary key,
    under the generic plan a prepared statement ends up with, and with stale statistics."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite writes each finish alone")
    insert_rows(store, history(2000))
    analyze(store)
    insert_rows(store, in_flight(3000, "PENDING"))
    ids = [f"p{i}" for i in range(16)]
    step = (1, "noop", "1", None, None, 0, 0, 1)
    columns = list(
        zip(*[(wid, f"tok{wid[1:]}", "SUCCESS", "1", None, *step) for wid in ids], strict=True)
    )
    with store.connection() as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        try:
            rows = conn.execute(
                "EXPLAIN (COSTS OFF) " + store._FINISH_MANY, (*map(list, columns), 5, 5)
            ).fetchall()
        finally:
            conn.execute("RESET plan_cache_mode")
    text = "\n".join(r[0] for r in rows)
    assert "durable_workflows_pkey" in text, text
    assert "Seq Scan on durable_workflows" not in text, text


def test_garbage_collection_runs_in_batches_each_its_own_transaction(store):
    insert_rows(store, history(35) + in_flight(3, "PENDING"))
    with store.transaction() as conn:
        for i in range(35):
            store.execute(
                conn,
                "INSERT INTO durable_steps (workflow_id, step_id, name) VALUES (%s, 1, 'noop')",
                (f"h{i}",),
            )
    transactions = 0
    original = store.transaction

    @contextlib.contextmanager
    def counting() -> Iterator[Any]:
        nonlocal transactions
        transactions += 1
        with original() as conn:
            yield conn

    store.transaction = counting  # type: ignore[method-assign]
    try:
        assert store.garbage_collect(1000 + 25, batch=10) == 25  # finished before the cutoff
    finally:
        store.transaction = original  # type: ignore[method-assign]
    assert transactions == 3  # 10 + 10 + 5
    left = {w.workflow_id for w in store.list_workflows(limit=None)}
    assert left == {f"h{i}" for i in range(25, 35)} | {"p0", "p1", "p2"}
    assert store.fetchone("SELECT COUNT(*) FROM durable_steps")[0] == 10


def test_sqlite_housekeeping_reads_do_not_wait_for_the_writer(tmp_path):
    """Before: every read took the store's one connection and lock, so a scan waited behind
    (and held up) the writers; under WAL a second connection reads beside them."""
    store = open_store(f"sqlite:///{tmp_path / 'd.sqlite3'}")
    store.migrate()
    insert_rows(store, in_flight(3, "PENDING"))
    inside, release = threading.Event(), threading.Event()

    def writer() -> None:
        with store.transaction() as conn:
            store.execute(conn, "UPDATE durable_workflows SET updated_at = 0")
            inside.set()
            release.wait(30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert inside.wait(10)
        results: list[Any] = []
        reader = threading.Thread(
            target=lambda: results.append(
                (
                    store.orphaned_workflows(30_000, ("v",)),
                    store.expire_deadlines(),
                    store.list_workflows(status=["PENDING"]),
                )
            )
        )
        reader.start()
        reader.join(10)
        assert not reader.is_alive(), "the housekeeping read waited for the writer"
        orphans, expired, listed = results[0]
        # The reader sees the last committed state, not the open transaction's update.
        assert {w.updated_at for w in listed} == {10**9, 10**9 + 1, 10**9 + 2}
        assert expired == []
        assert len(orphans) == 3  # no executor row: all orphaned
    finally:
        release.set()
        thread.join()
        store.close()


def test_garbage_collection_batches_are_served_by_indexes(store):
    """Before: each batch's SELECT sorted every finished row (SQLite), and its message DELETE
    scanned every stored message: 1M workflows took 511 s on SQLite."""
    insert_rows(store, history(3000))
    with store.transaction() as conn:
        for i in range(3000):
            store.execute(
                conn,
                "INSERT INTO durable_notifications (destination_id, topic, message, created_at, "
                "consumed_at) VALUES (%s, 't', '1', 1, 1)",
                (f"h{i}",),
            )
    analyze(store)
    with captured(store) as seen:
        assert store.garbage_collect(1000 + 20, batch=10) == 20
    text = plan(store, *the_statement(seen, "SELECT workflow_id FROM durable_workflows"))
    assert "durable_workflows_finished_idx" in text, text
    assert "TEMP B-TREE" not in text and "Sort" not in text, text
    text = plan(store, *the_statement(seen, "DELETE FROM durable_notifications"))
    assert "durable_notifications_destination_idx" in text, text
    assert store.fetchone("SELECT COUNT(*) FROM durable_notifications")[0] == 2980


def indexes_holding(store: SQLStore, workflow_id: str) -> list[str]:
    """The indexes of durable_workflows whose predicate holds for the row ``workflow_id``
    (the ones its current version was written to: a status change is not a HOT update)."""
    if store.dialect == "postgresql":
        found = store.fetchall(
            "SELECT indexrelid::regclass::text, pg_get_expr(indpred, indrelid) FROM pg_index "
            "WHERE indrelid = 'durable_workflows'::regclass"
        )
    else:
        found = store.fetchall(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name = 'durable_workflows'"
        )
        found = [(name, sql and sql.partition(" WHERE ")[2] or None) for name, sql in found]
    held = []
    for name, predicate in found:
        where = f" AND ({predicate})" if predicate else ""
        sql = f"SELECT COUNT(*) FROM durable_workflows WHERE workflow_id = %s{where}"  # noqa: S608
        if store.fetchone(sql, (workflow_id,))[0]:
            held.append(name.rsplit(".", 1)[-1])
    return sorted(held)


def test_a_queued_workflow_is_written_to_few_indexes(store):
    """Before (schema 14): 9 index entries at enqueue, 8 at the claim, 8 at the finish. The
    queue index held every queued row of history for counts of in-flight rows only, and the
    rate limit's index held rows that never started."""
    from durable_core.store import WorkflowRow

    t = store.now_ms()
    row = WorkflowRow("w1", NAME, "ENQUEUED", QUEUE, "[]", application_version="v",
                      created_at=t, updated_at=t)  # fmt: skip
    assert store.insert_workflow(row)
    enqueued = indexes_holding(store, "w1")
    claim = QueueClaim(QUEUE, 1, 5, (100, 60.0), False, (NAME,), ("v",))
    (claimed,) = store.claim_from_queue(claim, "exec", "tok-")
    running = indexes_holding(store, "w1")
    assert store.finish_workflow("w1", claimed.run_token, "SUCCESS", "1", None)
    finished = indexes_holding(store, "w1")
    listing = {"created_idx", "name_idx", "status_created_idx", "queue_created_idx"}
    listing = {f"durable_workflows_{name}" for name in listing}
    assert listing <= set(enqueued) & set(running) & set(finished)
    assert (len(enqueued), len(running), len(finished)) == (7, 8, 7), (enqueued, running, finished)
    assert "durable_workflows_running_idx" in running
    assert "durable_workflows_queue_started_idx" in set(running) & set(finished)


def test_queue_limit_counts_read_only_their_rows(store):
    """The claim's concurrency count reads a queue's PENDING rows and its rate limit count
    the queue's started rows, from indexes that hold only those (not the queue's history)."""
    insert_rows(store, history(3000) + in_flight(40, "ENQUEUED"))
    store.run("UPDATE durable_workflows SET status = 'PENDING', started_at = %s "
              "WHERE workflow_id IN ('e0', 'e1')", (store.now_ms(),))  # fmt: skip
    analyze(store)
    claim = QueueClaim(QUEUE, 10, 5, (4, 60.0), False, (NAME,), ("v",))
    with captured(store) as seen:
        claimed = store.claim_from_queue(claim, "exec", "tok-")
    assert len(claimed) == 2  # the rate limit: 4 starts a minute, 2 taken
    counts = [(q, p) for q, p in seen if q.startswith("SELECT COUNT(*)")]
    running = plan(store, *next((q, p) for q, p in counts if "PENDING" in q))
    assert "durable_workflows_running_idx" in running, running
    started = plan(store, *next((q, p) for q, p in counts if "started_at >" in q))
    assert "durable_workflows_queue_started_idx" in started, started
