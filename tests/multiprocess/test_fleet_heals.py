"""SIGKILL one of three workers during a run of 300 queued workflows: every workflow finishes
once, the @transaction side effect happens exactly 300 times, and the dead executor's work is
adopted by the live workers within lease + 10 s (issue 4)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.crash.harness import app_rows, create_app_table, wait_for
from tests.crash.workers import fleet_item, fleet_queue

pytestmark = [pytest.mark.crash, pytest.mark.timeout(180)]

LEASE = 5
TOTAL = 300


def count(c, sql: str, *params) -> int:
    return c.store.fetchone(sql, params)[0]


def test_killed_worker_is_healed_and_every_side_effect_happens_once(
    fleet, client, database_url, tmp_path
):
    create_app_table(database_url)
    log = str(tmp_path / "effects.log")
    workers = [
        fleet.spawn(f"worker-{i}", "--lease", str(LEASE), "--heartbeat", "1") for i in range(3)
    ]
    for worker in workers:
        worker.wait_ready()
    c = client()
    name = fleet_item.__durable_workflow__.name
    started = time.time()

    def enqueue_all() -> None:
        enqueuer = client()
        for i in range(TOTAL):
            enqueuer.enqueue(fleet_queue.name, name, log, f"row-{i}", workflow_id=f"item-{i}")

    feeding = threading.Thread(target=enqueue_all)
    feeding.start()  # the kill below happens while work is still arriving and running
    held_sql = (
        "SELECT COUNT(*) FROM durable_workflows WHERE executor_id = %s AND status = 'PENDING'"
    )

    def busiest():  # a worker holding work, once the run is under way
        if count(c, "SELECT COUNT(*) FROM durable_workflows WHERE status = 'SUCCESS'") < 30:
            return None
        worker = max(workers, key=lambda w: count(c, held_sql, w.executor_id))
        return worker if count(c, held_sql, worker.executor_id) >= 5 else None

    victim = wait_for(busiest, 60, "a worker to hold work", interval=0.01)
    killed_at = victim.kill()
    # A finish the victim sent just before SIGKILL still commits on the server (a batch of
    # several with group commit): count what it held once its connections are gone.
    backends_sql = "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = %s"
    own_name = f"durable {victim.executor_id}"[:63]
    if c.store.dialect == "postgresql":
        wait_for(lambda: count(c, backends_sql, own_name) == 0, 30, "the victim's backends to end")
    held = count(c, held_sql, victim.executor_id)
    done_at_kill = count(c, "SELECT COUNT(*) FROM durable_workflows WHERE status = 'SUCCESS'")
    assert held >= 1 and done_at_kill < TOTAL

    adopted_at = wait_for(
        lambda: count(c, held_sql, victim.executor_id) == 0 and time.time(),
        LEASE + 30,
        "the dead executor's workflows to be adopted",
        interval=0.1,
    )
    feeding.join(timeout=60)
    success_sql = "SELECT COUNT(*) FROM durable_workflows WHERE status = 'SUCCESS'"
    wait_for(lambda: count(c, success_sql) == TOTAL, 120, "all workflows to finish", interval=0.2)
    finished_at = time.time()

    adoption = adopted_at - killed_at
    print(
        f"victim held {held} running workflows ({done_at_kill} done) when killed; adopted "
        f"{adoption:.2f}s after SIGKILL (lease {LEASE}s); all {TOTAL} done in "
        f"{finished_at - started:.1f}s"
    )
    assert adoption <= LEASE + 10
    rows = app_rows(database_url)
    assert len(rows) == TOTAL
    assert set(rows) == {f"row-{i}" for i in range(TOTAL)}
    statuses = c.store.fetchall("SELECT status, COUNT(*) FROM durable_workflows GROUP BY status")
    assert statuses == [("SUCCESS", TOTAL)]
    recovered = count(c, "SELECT COUNT(*) FROM durable_workflows WHERE recovery_attempts > 0")
    assert recovered >= held  # the adopted ones went through recovery
    executors = c.store.fetchall(
        "SELECT DISTINCT executor_id FROM durable_workflows WHERE recovery_attempts > 0"
    )
    assert victim.executor_id not in {e[0] for e in executors}
