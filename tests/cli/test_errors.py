"""Bad input: a clear message on stderr and exit code 1, never a traceback or a password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from durable_core import Client
from durable_core.cli import run_group, workflows_group

from .conftest import assert_clean_failure, run_cli

UNKNOWN = "no-such-workflow-42"


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize(
    "args",
    [
        ("workflows", "show", UNKNOWN),
        ("workflows", "show", UNKNOWN, "--json"),
        ("workflows", "steps", UNKNOWN),
        ("workflows", "cancel", UNKNOWN),
        ("workflows", "resume", UNKNOWN),
        ("workflows", "fork", UNKNOWN, "--start-step", "1"),
    ],
)
def test_unknown_workflow_id(durable, args):
    result = durable(*args)
    assert_clean_failure(result, UNKNOWN, "No workflow")
    assert result.stdout == ""


def test_fork_beyond_recorded_steps(engine, durable, durable_json):
    from . import flows

    handle = engine.start_workflow(flows.three_steps, "beyond", 1)
    handle.result(timeout=10)
    assert_clean_failure(
        durable("workflows", "fork", handle.workflow_id, "--start-step", "9"),
        "recorded only 3 step(s)",
        "at most 4",
    )
    assert_clean_failure(
        durable("workflows", "fork", handle.workflow_id, "--start-step", "0"), "start_step"
    )
    assert len(durable_json("workflows", "list")) == 1  # nothing was created


@pytest.mark.parametrize("args", [("workflows", "list"), ("queues",), ("gc", "--older-than", "1d")])
def test_unmigrated_database(database_url, backend, tmp_path, args):
    if backend == "sqlite":
        Path(database_url.split("///", 1)[1]).touch()  # exists, but empty
    result = run_cli(database_url, *args)
    assert_clean_failure(result, "not been migrated", "durable migrate")


def test_missing_sqlite_file_is_not_created(tmp_path):
    path = tmp_path / "absent.sqlite3"
    result = run_cli(f"sqlite:///{path}", "workflows", "list")
    assert_clean_failure(result, "No SQLite system database", "durable migrate")
    assert not path.exists()


@pytest.mark.parametrize(
    "url,message",
    [
        ("postgresql://admin:hunter2@db.example:notaport/app", "bad port"),
        ("postgresql://admin:hunter2@/app", "no host"),
        ("mysql://admin:hunter2@localhost/app", "Unsupported database URL"),
        ("admin:hunter2@localhost", "Malformed database URL"),
        ("postgresql://admin:hunter2@127.0.0.1:1/app", "Cannot connect"),
    ],
)
@pytest.mark.parametrize("command", [("workflows", "list"), ("migrate",), ("queues",)])
def test_bad_or_unreachable_url_never_prints_the_password(url, message, command):
    result = run_cli(url, *command)
    assert_clean_failure(result, message)
    assert "hunter2" not in result.output


def test_database_url_from_the_environment(database_url):
    migrated = run_cli(None, "migrate", env={"DURABLE_DATABASE_URL": database_url})
    assert migrated.exit_code == 0, migrated.output
    listed = run_cli(
        None, "workflows", "list", "--json", env={"DURABLE_DATABASE_URL": database_url}
    )
    assert listed.exit_code == 0 and listed.stdout.strip() == "[]"
    # The option wins over the environment.
    bad = run_cli(database_url, "workflows", "list", env={"DURABLE_DATABASE_URL": "nonsense"})
    assert bad.exit_code == 0, bad.output


def test_run_group_with_an_integration_client_factory(database_url, capsys):
    """What django_durable's ``manage.py durable workflows …`` does: its own Client."""
    assert run_cli(database_url, "migrate").exit_code == 0
    made: list[Client] = []

    def factory() -> Client:
        made.append(Client(database_url))
        return made[-1]

    assert run_group(workflows_group, ["list", "--json"], factory, "manage.py durable") == 0
    assert capsys.readouterr().out.strip() == "[]"
    assert run_group(workflows_group, ["show", UNKNOWN], factory, "manage.py durable") == 1
    assert UNKNOWN in capsys.readouterr().err
    assert run_group(workflows_group, ["bogus"], factory, "manage.py durable") == 2
    assert len(made) == 2  # one client per command line, built lazily


def test_python_dash_m_exits_1_without_traceback(database_url):
    assert run_cli(database_url, "migrate").exit_code == 0
    proc = subprocess.run(
        [sys.executable, "-m", "durable_core", "--database-url", database_url]
        + ["workflows", "show", UNKNOWN],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"Error: No workflow with ID {UNKNOWN!r}" in proc.stderr


def test_worker_refuses_an_unknown_module_or_queue(database_url, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the worker puts the cwd on sys.path
    no_module = run_cli(database_url, "worker", "--app", "no_such_module_xyz")
    assert_clean_failure(no_module, "Cannot import --app 'no_such_module_xyz'")
    # A module that declares no queues (importing the test app here would register its
    # queues in this process, for every later engine to serve).
    no_queue = run_cli(database_url, "worker", "--app", "json", "--queues", "nope,also_nope")
    assert_clean_failure(no_queue, "'nope', 'also_nope'", "json does not declare")
