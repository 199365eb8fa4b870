"""Processes launching at once on a fresh database: migrations are serialized (an advisory lock
on PostgreSQL, SQLite's write lock), nobody fails, and the first @transaction of each never
creates a table (it used to race on PostgreSQL's catalog: UniqueViolation on pg_type)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import drop_postgres_schema, make_postgres_url

PROCESSES = 4
ROUNDS = 5

# Each process: report ready, then for each database URL sent (the go signal, sent to every
# process at once) launch an engine on it, run a workflow with a @transaction step, report.
# The interpreters are started once for every round: starting four of them per round cost
# most of the test's time, and warm processes launch closer together, which the race needs.
CHILD = r"""
import sys, uuid
from durable_core import Engine, transaction, workflow

@transaction
def tx(x):
    return x + 1

@workflow
def flow(x):
    return tx(x)

n = int(sys.argv[1])
sys.stdout.write("ready\n"); sys.stdout.flush()
for line in sys.stdin:
    url = line.strip()
    if not url:
        break
    engine = Engine(url, executor_id=f"mig-{n}-{uuid.uuid4().hex[:6]}", run_scheduler=False)
    try:
        engine.launch()
        print("result", engine.start_workflow(flow, n).result(timeout=60))
    except BaseException as exc:
        print("FAILED", type(exc).__name__, exc)
    finally:
        engine.shutdown(timeout=5)
    print("done", flush=True)
"""


class Launchers:
    """``PROCESSES`` interpreters that launch engines at once on each database they are sent."""

    def __init__(self) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(n)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
            for n in range(PROCESSES)
        ]
        for p in self.procs:  # every interpreter is up and imported before any launch
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"

    def launch_all_at_once(self, url: str) -> list[str]:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(url + "\n")
            p.stdin.flush()
        outputs = []
        for p in self.procs:
            assert p.stdout is not None
            lines = []
            for line in p.stdout:
                if line.strip() == "done":
                    break
                lines.append(line)
            outputs.append("".join(lines))
        return outputs

    def close(self) -> None:
        for p in self.procs:
            try:
                p.communicate("\n", timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()


@pytest.fixture
def launchers():
    group = Launchers()
    yield group
    group.close()


def test_processes_launching_at_once_on_a_fresh_database(backend, tmp_path, launchers):
    for round_ in range(ROUNDS):
        if backend == "sqlite":
            url, schema = f"sqlite:///{tmp_path / f'fresh-{round_}.sqlite3'}", None
        else:
            url, schema = make_postgres_url()
        try:
            outputs = launchers.launch_all_at_once(url)
        finally:
            if schema:
                drop_postgres_schema(schema)
        for n, out in enumerate(outputs):
            assert f"result {n + 1}" in out, (round_, out)


def test_each_schema_version_is_applied_once(tmp_path, launchers):
    """Serialized: each migration version is applied exactly once however many launch."""
    from durable_core.store import open_store

    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    outputs = launchers.launch_all_at_once(url)
    assert all("result" in out for out in outputs), outputs
    store = open_store(url)
    try:
        versions = [r[0] for r in store.fetchall("SELECT version FROM durable_schema")]
    finally:
        store.close()
    assert sorted(versions) == sorted(set(versions))
