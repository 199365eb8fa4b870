"""SQLite under write contention from several processes: three workers share one database
file while another process holds the write lock (``BEGIN IMMEDIATE``) for longer than every
busy timeout. Statements wait and retry; every workflow finishes SUCCESS, none ERROR, and
each @transaction effect happens once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import pytest

from durable_core import Client
from tests import processes
from tests.chaos.fleet import ChaosFleet
from tests.chaos.flows import APP_TABLE, APP_TABLE_DDL, contention_queue, steady
from tests.chaos.invariants import by_step, read_executions
from tests.crash.harness import REPO_ROOT, app_engine, migrate, wait_for
from tests.crash.workers import read_lines

pytestmark = [pytest.mark.crash, pytest.mark.timeout(150)]

WORKFLOWS, STEPS = 45, 6
HOLDS = (6.0, 12.0)  # past SQLAlchemy's 5 s and the store's 10 s busy timeouts


def hold_lock(path: str, seconds: float) -> subprocess.Popen:
    proc = processes.spawn(
        [sys.executable, "-m", "tests.outage.hold_lock", path, str(seconds)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_database_is_locked_pauses_workers(tmp_path):
    path = str(tmp_path / "durable.sqlite3")
    url, log = f"sqlite:///{path}", str(tmp_path / "effects.log")
    migrate(url)
    app = app_engine(url)
    with app.begin() as conn:
        conn.exec_driver_sql(APP_TABLE_DDL)
    client = Client(url)
    name = steady.__durable_workflow__.name
    for i in range(WORKFLOWS):
        client.enqueue(contention_queue.name, name, log, i, STEPS, 0.05, workflow_id=f"wf-{i}")
    fleet = ChaosFleet(tmp_path, url)
    try:
        for n in range(3):
            fleet.spawn(f"exec-{n}")
        for worker in fleet.workers:
            worker.wait_ready()
        done_sql = "SELECT COUNT(*) FROM durable_workflows WHERE status = 'SUCCESS'"
        held = []
        for seconds in HOLDS:
            wait_for(lambda: len(read_lines(log)) > 0, 30, "work to be under way")
            before = len(read_lines(log))
            started = time.monotonic()
            locker = hold_lock(path, seconds)
            assert locker.wait(timeout=seconds + 30) == 0
            held.append(time.monotonic() - started)
            # Work goes on after the lock is released.
            wait_for(lambda b=before: len(read_lines(log)) > b + 10, 30, "work to resume")
        wait_for(
            lambda: client.store.fetchone(done_sql)[0] == WORKFLOWS,
            90,
            "every workflow to finish",
            interval=0.2,
        )
        for worker in fleet.workers:
            assert worker.proc.poll() is None, f"{worker.executor_id} died:\n{worker.log_text()}"
    finally:
        fleet.stop_all()
    statuses = client.store.fetchall(
        "SELECT status, COUNT(*) FROM durable_workflows GROUP BY status"
    )
    client.close()
    assert statuses == [("SUCCESS", WORKFLOWS)]
    with app.connect() as conn:
        effects = conn.exec_driver_sql(f"SELECT workflow_id, step_id FROM {APP_TABLE}").fetchall()
    app.dispose()
    expected = {(f"wf-{i}", s) for i in range(WORKFLOWS) for s in range(2, STEPS + 1, 2)}
    assert Counter(map(tuple, effects)) == Counter(expected)
    runs = by_step(read_executions(read_lines(log)))
    assert all(len(v) == 1 for k, v in runs.items() if k[1] % 2)  # no plain step ran twice
    locked_warnings = sum(w.log_text().count("locked") for w in fleet.workers)
    print(
        f"write lock held for {', '.join(f'{h:.1f}s' for h in held)}; {locked_warnings} "
        "'database is locked' retries logged by the workers"
    )
