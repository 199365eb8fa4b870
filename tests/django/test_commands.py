"""``manage.py durable workflows …`` on the Django database."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from durable_core import start_workflow
from tests.django.conftest import wait_for
from tests.django.testapp import workflows as wf

SHOP = Path(__file__).resolve().parents[2] / "example_projects" / "django_shop"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("durable", "workflows", *args, stdout=out)
    return out.getvalue()


def test_list_show_steps(web_engine):
    handle = start_workflow(wf.adder, 20, 22)
    assert handle.result(timeout=20) == 42
    assert handle.workflow_id in run("list", "--status", "SUCCESS")
    shown = json.loads(run("show", handle.workflow_id, "--json"))
    assert shown["status"] == "SUCCESS" and shown["result"] == 42 and shown["args"] == [20, 22]
    steps = json.loads(run("steps", handle.workflow_id, "--json"))
    assert [(s["step_id"], s["name"], s["result"]) for s in steps] == [
        (1, "tests.django.testapp.workflows.add", 42)
    ]


def test_cancel_resume_fork(worker):
    handle = start_workflow(wf.waiter)
    assert "Cancelled workflow" in run("cancel", handle.workflow_id)
    assert handle.status().status == "CANCELLED"
    assert "Resumed workflow" in run("resume", handle.workflow_id)
    worker.send(handle.workflow_id, "go!", topic="go")
    assert handle.result(timeout=20) == "go!"
    new_id = f"fork-{uuid.uuid4().hex[:8]}"
    assert new_id in run("fork", handle.workflow_id, "--start-step", "2", "--workflow-id", new_id)
    # Step 1 (the recv) is copied, so the fork finishes with the same message.
    assert worker.retrieve_workflow(new_id).result(timeout=20) == "go!"


@pytest.mark.parametrize("action", ["show", "steps", "cancel", "resume", "fork"])
def test_unknown_workflow_is_a_clear_error(web_engine, action):
    extra = ["--start-step", "1"] if action == "fork" else []
    with pytest.raises(CommandError, match="no-such-id"):
        run(action, "no-such-id", *extra)


def test_unknown_workflow_exits_1(web_engine):
    from django.db import connection

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.django.settings",
        "DURABLE_DJANGO_DB_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONPATH": str(SHOP.parents[1]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "django", "durable", "workflows", "show", "nope-123"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=SHOP.parents[1],
    )
    assert done.returncode == 1
    assert "nope-123" in done.stderr and "Traceback" not in done.stderr


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    from django.db import connection

    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.django.settings",
        "DURABLE_DJANGO_DB_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONPATH": str(SHOP.parents[1]),
        "COLUMNS": "100",
        **env,
    }
    return subprocess.run(
        [sys.executable, str(SHOP / "manage.py"), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=SHOP.parents[1],
    )


@pytest.mark.parametrize(
    "subcommand", [[], ["workflows"], ["workflows", "list"], ["workflows", "fork"], ["worker"]]
)
def test_manage_py_durable_help_is_the_core_help(transactional_db, subcommand):
    """`manage.py durable` mounts the core click group: the same commands and options."""
    ours = manage("durable", *subcommand, "--help")
    core = subprocess.run(
        [sys.executable, "-m", "durable_core", *subcommand, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert ours.returncode == core.returncode == 0, ours.stderr
    prog = "python -m durable_core" if "python -m" in core.stdout else "durable"
    assert ours.stdout.replace("manage.py durable", prog) == core.stdout


def test_manage_py_durable_has_the_core_commands(web_engine):
    handle = start_workflow(wf.adder, 1, 1)
    assert handle.result(timeout=20) == 2
    listed = json.loads(
        run_top(
            "workflows", "list", "--status", "success", "--limit", "5", "--offset", "0", "--json"
        )
    )
    assert handle.workflow_id in [w["workflow_id"] for w in listed]
    assert json.loads(run_top("queues", "--json")) is not None
    assert "Deleted" in run_top("gc", "--older-than", "7d")


def run_top(*args: str) -> str:
    out = io.StringIO()
    call_command("durable", *args, stdout=out)
    return out.getvalue()


def test_a_task_is_listed_shown_and_filtered_by_its_own_name(worker, monkeypatch):
    """Every Django task runs as the workflow django_durable.tasks.run_task: the CLI names
    it by the task's path, and --name takes that path (the limit counts matching tasks)."""
    from tests.django.testapp import tasks

    results = [tasks.multiply.enqueue(i, 2) for i in range(3)]
    other = tasks.urgent.enqueue(9)
    for result in [*results, other]:
        wait_for(lambda r=result: r.refresh() or r.is_finished, what=f"task {result.id}")
    # A table wide enough for every column: rich shortens cells to the width it is given (the
    # module's other tests leave ~40 rows whose widths squeezed the name column to nothing).
    monkeypatch.setenv("COLUMNS", "400")
    table = run("list", "--limit", "500")
    assert "tests.django.testapp.tasks.multiply" in table
    assert "django_durable.tasks.run_task" not in table
    shown = run("show", results[0].id)
    assert "tests.django.testapp.tasks.multiply" in shown and "run_task" not in shown
    listed = json.loads(run("list", "--name", "tests.django.testapp.tasks.multiply", "--json"))
    ids = {w["workflow_id"] for w in listed}
    assert {r.id for r in results} <= ids and other.id not in ids
    two = json.loads(
        run("list", "--name", "tests.django.testapp.tasks.multiply", "--limit", "2", "--json")
    )
    assert len(two) == 2 and {w["workflow_id"] for w in two} <= ids
    # A workflow's own name still filters as before.
    handle = start_workflow(wf.adder, 1, 2)
    assert handle.result(timeout=20) == 3
    by_name = json.loads(run("list", "--name", "tests.django.testapp.workflows.adder", "--json"))
    assert handle.workflow_id in {w["workflow_id"] for w in by_name}
