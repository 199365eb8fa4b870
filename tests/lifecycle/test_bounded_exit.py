"""Shutdown and interpreter exit are bounded (issue 10, "Shutdown and exit are bounded").

A real process launches an Engine, runs work and returns from main without calling
shutdown(); meanwhile its database is dropped or its server stopped. It must exit promptly:
a database that does not exist is a configuration error, not an outage, and at exit nothing
is retried past the shutdown timeout. A workflow that outlives ``shutdown(timeout=…)`` must
not keep retrying against the closed pool.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from tests import processes
from tests.conftest import PG_URL
from tests.crash.harness import REPO_ROOT, wait_for

pytestmark = [pytest.mark.crash, pytest.mark.timeout(180)]

EXIT_BOUND = 30  # generous: the expected exit takes a few seconds


class ExitingProcess:
    def __init__(self, url: str, mode: str, folder: Path) -> None:
        self.folder = folder
        self.output = folder / "output.txt"
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with open(self.output, "wb") as out:
            self.proc = processes.spawn(
                [sys.executable, "-m", "tests.lifecycle.run_exit", url, mode, str(folder)],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None and not (self.folder / "ready").exists():
                raise AssertionError(f"exited early:\n{self.output.read_text()}")
            return (self.folder / "ready").exists()

        wait_for(ready, 60, "the process to be ready")

    def touch(self, name: str) -> None:
        (self.folder / name).touch()

    def exit_seconds(self) -> float:
        """Seconds until the process exits; fails (and kills it) past EXIT_BOUND."""
        started = time.monotonic()
        try:
            self.proc.wait(timeout=EXIT_BOUND)
        except subprocess.TimeoutExpired:
            processes.kill(self.proc)
            raise AssertionError(
                f"still running {EXIT_BOUND}s later:\n{self.output.read_text()[-4000:]}"
            ) from None
        return time.monotonic() - started


@pytest.fixture
def own_database():
    """A database of this lane's own on the test server, dropped at the end in any case."""
    name = f"clock_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(PG_URL, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name, PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def drop(name: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.mark.parametrize("mode", ["idle", "running"])
def test_exit_is_prompt_after_the_database_is_dropped(own_database, tmp_path, mode):
    name, url = own_database
    process = ExitingProcess(url, mode, tmp_path)
    process.wait_ready()
    drop(name)
    process.touch("release")
    process.touch("go")
    seconds = process.exit_seconds()
    print(f"exited {seconds:.2f}s after the database was dropped ({mode})")
    log = process.output.read_text()
    # The process may exit (shutdown at exit gives up at once, a running step is cut off with
    # its daemon thread) before any statement meets the missing database: then only the bound
    # above is the proof. When one does, it is reported as what it is and not retried.
    if "does not exist" in log:
        assert "does not exist" in log  # reported as what it is
        # ... and not retried as an outage after that.
        assert "system database unavailable" not in log.split("does not exist", 1)[1]


@pytest.mark.parametrize("mode", ["idle", "running"])
def test_exit_is_prompt_while_the_server_is_down(fault_db, tmp_path, mode):
    process = ExitingProcess(fault_db.url, mode, tmp_path)
    process.wait_ready()
    with fault_db.cluster.down():
        process.touch("release")
        process.touch("go")
        seconds = process.exit_seconds()
    print(f"exited {seconds:.2f}s after the server stopped ({mode})")


def test_a_workflow_outliving_the_shutdown_timeout_does_not_block_exit(database_url, tmp_path):
    """shutdown(timeout=0.5) while a 3-second step runs: when the step ends, its checkpoint
    meets the closed store and gives up; the process exits once the step body returns."""
    process = ExitingProcess(database_url, "past-timeout", tmp_path)
    process.wait_ready()
    seconds = process.exit_seconds()
    print(f"exited {seconds:.2f}s after shutdown(timeout=0.5) returned")
    assert seconds < 3 + 15
