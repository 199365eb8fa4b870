"""health.check and ``durable health``: database, schema, executor heartbeat (both backends)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from durable_core import health
from durable_core.store import open_store
from tests.cli.conftest import run_cli


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_passes_on_a_migrated_database_with_a_live_executor(engine):
    report = health.check(engine.store, executor_id=engine.executor_id)
    assert report.ok, report
    assert [c.name for c in report.checks] == ["database", "schema", "executor"]


def test_check_fails_for_an_unknown_or_stale_executor(engine):
    unknown = health.check(engine.store, executor_id="no-such-executor")
    assert not unknown.ok and "not registered" in unknown.checks[-1].detail
    old = engine.store.now_ms() - 120_000
    engine.store.run(
        "INSERT INTO durable_executors (executor_id, application_version, hostname, pid, "
        "started_at, heartbeat_at) VALUES ('stale-one', 'v', 'h', 1, %s, %s)",
        (old, old),
    )
    stale = health.check(engine.store, executor_id="stale-one", max_heartbeat_age=30)
    assert not stale.ok and stale.checks[-1].name == "executor"
    assert health.check(engine.store, executor_id="stale-one", max_heartbeat_age=600).ok
    with pytest.raises(ValueError, match="max_heartbeat_age"):
        health.check(engine.store, max_heartbeat_age=0)


def test_check_fails_on_an_unmigrated_database(database_url):
    store = open_store(database_url, pool_size=1)
    try:
        report = health.check(store)
    finally:
        store.close()
    assert [(c.name, c.ok) for c in report.checks] == [("database", True), ("schema", False)]
    assert "durable migrate" in report.checks[-1].detail


def test_cli_exit_status(engine, database_url):
    ok = run_cli(database_url, "health", "--executor-id", engine.executor_id)
    assert ok.exit_code == 0, ok.output
    assert "database: ok" in ok.output and "executor: ok" in ok.output
    as_json = json.loads(run_cli(database_url, "health", "--json").output)
    assert as_json["status"] == "ok" and as_json["checks"]["schema"]["ok"]
    missing = run_cli(database_url, "health", "--executor-id", "nobody")
    assert missing.exit_code == 1 and "executor: FAIL" in missing.output


def test_cli_fails_fast_when_the_database_is_unreachable():
    url = f"postgresql://postgres:secret@127.0.0.1:{closed_port()}/test"
    began = time.monotonic()
    result = run_cli(url, "health")
    assert result.exit_code == 1, result.output
    assert "database: FAIL" in result.output and "secret" not in result.output
    assert time.monotonic() - began < 30


def test_cli_answers_within_its_timeout_when_the_server_never_replies():
    """A server that accepts connections and says nothing (a frozen PostgreSQL, a black-holed
    proxy): the probe answers FAIL within --timeout instead of hanging."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections wait in the backlog; nothing is ever sent
        port = silent.getsockname()[1]
        url = f"postgresql://postgres@127.0.0.1:{port}/test?connect_timeout=60"
        began = time.monotonic()
        result = run_cli(url, "health", "--timeout", "1", "--json")
        took = time.monotonic() - began
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert report["status"] == "fail"
    assert "no answer within 1s (--timeout)" in report["checks"]["database"]["detail"]
    assert 1 <= took < 10, took
