"""Test-side helpers: spawn worker processes, kill them with SIGKILL, poll conditions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests import processes
from tests.crash.workers import read_lines
from tests.waiting import wait_for  # noqa: F401  (imported from here by other suites)

REPO_ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """A real worker process (``tests.crash.run_worker``) with its output in a file."""

    def __init__(self, tmp_path: Path, database_url: str, executor_id: str, *options: str):
        self.executor_id = executor_id
        self.ready_file = tmp_path / f"ready-{executor_id}-{time.monotonic_ns()}"
        self.output = tmp_path / f"worker-{executor_id}-{time.monotonic_ns()}.out"
        command = [
            sys.executable,
            "-m",
            "tests.crash.run_worker",
            database_url,
            executor_id,
            "--ready",
            str(self.ready_file),
            *options,
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with open(self.output, "wb") as out:
            self.proc = processes.spawn(
                command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"worker {self.executor_id} exited with {self.proc.returncode}:\n"
                    + self.log_text()
                )
            return bool(read_lines(str(self.ready_file)))

        wait_for(ready, timeout, f"worker {self.executor_id} to launch")

    def kill(self) -> float:
        """SIGKILL the process (no cleanup runs); returns the time of the kill."""
        processes.signal_group(self.proc, signal.SIGKILL)
        killed_at = time.time()
        self.proc.wait(timeout=10)
        assert self.proc.returncode == -signal.SIGKILL
        return killed_at

    def stop(self) -> None:
        processes.kill(self.proc)


class Fleet:
    """Every worker a test started; all are killed at the end of the test."""

    def __init__(self, tmp_path: Path, database_url: str):
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.workers: list[Worker] = []

    def spawn(self, executor_id: str, *options: str) -> Worker:
        worker = Worker(self.tmp_path, self.database_url, executor_id, *options)
        self.workers.append(worker)
        return worker

    def outputs(self) -> str:
        return "\n".join(f"--- {w.executor_id}\n{w.log_text()}" for w in self.workers)

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()


def app_engine(database_url: str):
    """A SQLAlchemy engine on the application database (here: the system database)."""
    from sqlalchemy import create_engine

    from durable_core.store import parse_database_url

    return create_engine(parse_database_url(database_url).sqlalchemy)


def create_app_table(database_url: str) -> None:
    from sqlalchemy import text

    from tests.crash.workers import APP_TABLE_DDL

    engine = app_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text(APP_TABLE_DDL))
    engine.dispose()


def app_rows(database_url: str) -> list[str]:
    from sqlalchemy import text

    from tests.crash.workers import APP_TABLE

    engine = app_engine(database_url)
    with engine.connect() as conn:
        rows = [r[0] for r in conn.execute(text(f"SELECT tag FROM {APP_TABLE}"))]
    engine.dispose()
    return rows


def migrate(database_url: str) -> None:
    """Create the schema before any worker runs, so that work can be enqueued first."""
    from durable_core.store import open_store, parse_database_url

    store = open_store(parse_database_url(database_url))
    try:
        store.migrate()
    finally:
        store.close()


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end and a start at the same instant do not
    overlap)."""
    events = sorted([(end, -1) for _, end in intervals] + [(start, 1) for start, _ in intervals])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def max_in_window(times: list[float], window: float) -> int:
    """The most ``times`` inside any half-open window ``[t, t + window)``."""
    times = sorted(times)
    peak, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] >= window:
            first += 1
        peak = max(peak, last - first + 1)
    return peak
