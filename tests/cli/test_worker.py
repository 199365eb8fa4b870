"""``durable worker`` as a real process: serves its queues, exits 0 after SIGTERM."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from durable_core import Client
from tests import processes

from .conftest import run_cli

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def start_worker(database_url: str, log_path: Path, *options: str) -> subprocess.Popen:
    """``python -m durable_core worker --app worker_app`` run from this folder (the worker puts
    the current directory on sys.path, so the module is found as ``worker_app``)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DURABLE_DATABASE_URL", None)
    command = [sys.executable, "-m", "durable_core", "--database-url", database_url]
    command += ["worker", "--app", "worker_app", *options]
    with open(log_path, "w") as log:
        return processes.spawn(command, cwd=HERE, env=env, stdout=log, stderr=log)


@pytest.fixture
def worker_log(tmp_path) -> Path:
    return tmp_path / "worker.log"


@pytest.fixture
def client(database_url):
    assert run_cli(database_url, "migrate").exit_code == 0
    with Client(database_url, poll_interval=0.1) as c:
        yield c


def _stop(proc: subprocess.Popen) -> None:
    processes.kill(proc)


def test_worker_serves_its_queues_and_finishes_running_work_on_sigterm(
    database_url, client, worker_log
):
    proc = start_worker(
        database_url,
        worker_log,
        "--queues",
        "cli_jobs",
        "--concurrency",
        "4",
        "--executor-id",
        "cli-worker-1",
        "--shutdown-timeout",
        "30",
    )
    try:
        quick = client.enqueue("cli_jobs", "worker_app.quick", 21)
        assert quick.result(timeout=30) == 42
        assert quick.status().executor_id == "cli-worker-1"
        unserved = client.enqueue("cli_other", "worker_app.quick", 1)

        slow = client.enqueue("cli_jobs", "worker_app.long_running", 1.5)
        assert client.get_event(slow.workflow_id, "started", timeout=30) is True
        signalled_at = dt.datetime.now(dt.UTC)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        _stop(proc)
    log = worker_log.read_text()
    assert "ready; serving queues: cli_jobs" in log
    assert "received SIGTERM" in log and "Traceback" not in log
    # The step that was running when SIGTERM arrived finished before the worker exited.
    status = slow.status()
    assert status.status == "SUCCESS" and slow.result(timeout=0) == "slept"
    assert status.finished_at > signalled_at
    assert unserved.status().status == "ENQUEUED"  # --queues left cli_other alone


def test_worker_exits_at_the_shutdown_timeout_and_leaves_the_rest_for_recovery(
    database_url, client, worker_log
):
    proc = start_worker(database_url, worker_log, "--shutdown-timeout", "0.5")
    try:
        slow = client.enqueue("cli_jobs", "worker_app.long_running", 20)
        assert client.get_event(slow.workflow_id, "started", timeout=30) is True
        signalled = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        elapsed = time.monotonic() - signalled
    finally:
        _stop(proc)
    assert elapsed < 10, f"worker took {elapsed:.1f}s to exit with a 0.5s shutdown timeout"
    assert "left for recovery" in worker_log.read_text()
    assert slow.status().status == "PENDING"  # another worker recovers it


def test_worker_runs_sync_and_async_transactions_on_its_app_database(
    database_url, client, worker_log, tmp_path
):
    """``--app-database``: @transaction steps, sync and async, write to the app's own database
    (async ones used to fail: the worker had no AsyncEngine)."""
    from sqlalchemy import create_engine, text

    from durable_core.store import parse_database_url
    from tests.conftest import drop_postgres_schema, make_postgres_url

    schema = None
    if database_url.startswith("sqlite"):
        app_url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    else:
        app_url, schema = make_postgres_url()
    assert run_cli(database_url, "migrate", "--app-database", app_url).exit_code == 0
    app = create_engine(parse_database_url(app_url).sqlalchemy)
    with app.begin() as conn:
        conn.execute(text("CREATE TABLE worker_notes (note VARCHAR(100) PRIMARY KEY)"))
    proc = start_worker(database_url, worker_log, "--app-database", app_url)
    try:
        first = client.enqueue("cli_jobs", "worker_app.note_async", "a")
        assert first.result(timeout=30) == 1
        second = client.enqueue("cli_jobs", "worker_app.note_sync", "b")
        assert second.result(timeout=30) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        _stop(proc)
        with app.connect() as conn:
            notes = sorted(r[0] for r in conn.execute(text("SELECT note FROM worker_notes")))
        app.dispose()
        if schema:
            drop_postgres_schema(schema)
    assert notes == ["a", "b"]
    assert "Traceback" not in worker_log.read_text()
