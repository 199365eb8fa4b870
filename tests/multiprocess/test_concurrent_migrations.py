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

# Each process: wait at the barrier, launch, run a workflow with a @transaction step, report.
CHILD = r"""
import sys, uuid
from durable_core import Engine, transaction, workflow

@transaction
def tx(x):
    return x + 1

@workflow
def flow(x):
    return tx(x)

url, n = sys.argv[1], int(sys.argv[2])
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()  # the go signal, sent to every process at once
engine = Engine(url, executor_id=f"mig-{n}-{uuid.uuid4().hex[:6]}", run_scheduler=False)
try:
    engine.launch()
    print("result", engine.start_workflow(flow, n).result(timeout=60))
except BaseException as exc:
    print("FAILED", type(exc).__name__, exc)
finally:
    engine.shutdown(timeout=5)
"""


def _launch_all_at_once(url: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for n in range(PROCESSES)
    ]
    for p in procs:  # every interpreter is up and imported before any of them launches
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outputs = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        outputs.append(out)
    return outputs


@pytest.mark.parametrize("round_", range(5))
def test_processes_launching_at_once_on_a_fresh_database(backend, tmp_path, round_):
    if backend == "sqlite":
        url, schema = f"sqlite:///{tmp_path / 'fresh.sqlite3'}", None
    else:
        url, schema = make_postgres_url()
    try:
        outputs = _launch_all_at_once(url)
    finally:
        if schema:
            drop_postgres_schema(schema)
    for n, out in enumerate(outputs):
        assert f"result {n + 1}" in out, out


def test_each_schema_version_is_applied_once(tmp_path):
    """Serialized: each migration version is applied exactly once however many launch."""
    from durable_core.store import open_store

    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    outputs = _launch_all_at_once(url)
    assert all("result" in out for out in outputs), outputs
    store = open_store(url)
    try:
        versions = [r[0] for r in store.fetchall("SELECT version FROM durable_schema")]
    finally:
        store.close()
    assert sorted(versions) == sorted(set(versions))
