"""``durable workflows steps`` shows each step's attempts (JSON and the table), so a step that
failed twice and then succeeded is told apart from a first-try one. Both backends."""

from __future__ import annotations

import uuid

from . import flows
from .conftest import run_cli


def test_steps_list_the_attempts(engine, database_url, durable_json):
    handle = engine.start_workflow(flows.retried, uuid.uuid4().hex)
    assert handle.result(timeout=30) == "ok"
    steps = durable_json("workflows", "steps", handle.workflow_id)
    assert [(s["name"].rpartition(".")[2], s["attempts"]) for s in steps] == [
        ("record", 1),
        ("shaky", 3),
    ]
    table = run_cli(database_url, "workflows", "steps", handle.workflow_id, env={"COLUMNS": "400"})
    assert table.exit_code == 0, table.output
    header = next(line for line in table.stdout.splitlines() if "Attempts" in line)
    rows = [line for line in table.stdout.splitlines() if "tests.cli.flows." in line]
    column = header.index("Attempts")
    assert [row[column : column + 8].strip() for row in rows] == ["1", "3"]
