"""``durable workflows list|show|steps|cancel|resume|fork``, ``queues``, ``gc``, ``migrate``."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from durable_core import Client
from durable_core.errors import WorkflowCancelled
from durable_core.store.schema import CURRENT_VERSION
from tests.waiting import wait_for as _wait_for

from . import flows
from .conftest import run_cli

pytestmark = pytest.mark.usefixtures("engine")


def _tag() -> str:
    return uuid.uuid4().hex[:10]


def _parked(client: Client, *args) -> str:
    """A workflow enqueued on a queue no process serves, so it stays ENQUEUED."""
    return client.enqueue("cli_parked", "tests.cli.flows.three_steps", *args).workflow_id


@pytest.fixture
def client(database_url):
    with Client(database_url, poll_interval=0.1) as c:
        yield c


def test_list_filters_and_json(engine, client, durable, durable_json):
    tag = _tag()
    done = [engine.start_workflow(flows.three_steps, f"{tag}{i}", i) for i in range(3)]
    for handle in done:
        handle.result(timeout=10)
    parked = _parked(client, tag, 9)

    everything = durable_json("workflows", "list")
    assert {h.workflow_id for h in done} | {parked} <= {w["workflow_id"] for w in everything}
    first = next(w for w in everything if w["workflow_id"] == done[0].workflow_id)
    assert first["status"] == "SUCCESS"
    assert first["name"] == "tests.cli.flows.three_steps"
    assert first["args"] == [f"{tag}0", 0]
    assert first["result"] == 0
    assert dt.datetime.fromisoformat(first["created_at"]).tzinfo is not None

    enqueued = durable_json("workflows", "list", "--status", "enqueued")
    assert [w["workflow_id"] for w in enqueued] == [parked]
    assert [
        w["workflow_id"] for w in durable_json("workflows", "list", "--queue", "cli_parked")
    ] == [parked]
    by_name = durable_json("workflows", "list", "--name", "tests.cli.flows.three_steps")
    assert len(by_name) == 4
    page = durable_json("workflows", "list", "--limit", "2", "--offset", "1")
    assert [w["workflow_id"] for w in page] == [w["workflow_id"] for w in everything[1:3]]

    table = durable("workflows", "list", "--status", "SUCCESS")
    assert table.exit_code == 0, table.output
    for handle in done:
        assert handle.workflow_id in table.stdout
    assert parked not in table.stdout
    assert "3 workflow(s)" in table.stdout


def test_show_and_steps(engine, durable, durable_json):
    tag = _tag()
    handle = engine.start_workflow(flows.three_steps, tag, 2)
    assert handle.result(timeout=10) == 222

    shown = durable_json("workflows", "show", handle.workflow_id)
    assert shown["workflow_id"] == handle.workflow_id
    assert shown["status"] == "SUCCESS"
    assert shown["args"] == [tag, 2] and shown["result"] == 222 and shown["error"] is None
    human = durable("workflows", "show", handle.workflow_id)
    assert human.exit_code == 0
    assert "SUCCESS" in human.stdout and "222" in human.stdout

    steps = durable_json("workflows", "steps", handle.workflow_id)
    assert [(s["step_id"], s["name"], s["result"]) for s in steps] == [
        (1, "tests.cli.flows.record", 2),
        (2, "tests.cli.flows.record", 20),
        (3, "tests.cli.flows.record", 200),
    ]
    assert all(dt.datetime.fromisoformat(s["finished_at"]) for s in steps)
    table = durable("workflows", "steps", handle.workflow_id)
    assert table.exit_code == 0
    assert "tests.cli.flows.record" in table.stdout and "3 step(s)" in table.stdout


def test_show_failed_workflow_shows_error(engine, durable_json, durable):
    tag = _tag()
    flows.FAIL_ONCE.add(tag)
    handle = engine.start_workflow(flows.fails_until_fixed, tag)
    with pytest.raises(RuntimeError):
        handle.result(timeout=10)
    shown = durable_json("workflows", "show", handle.workflow_id)
    assert shown["status"] == "ERROR"
    assert shown["error"] == f"RuntimeError: flaky failure for {tag}"
    steps = durable_json("workflows", "steps", handle.workflow_id)
    assert steps[-1]["error"] == f"RuntimeError: flaky failure for {tag}"
    assert "flaky failure" in durable("workflows", "show", handle.workflow_id).stdout


def test_cancel_then_resume_an_enqueued_workflow(client, durable, durable_json):
    wid = _parked(client, _tag(), 1)
    assert durable_json("workflows", "cancel", wid) == {"workflow_id": wid, "status": "CANCELLED"}
    assert client.retrieve_workflow(wid).status().status == "CANCELLED"

    resumed = durable("workflows", "resume", wid)
    assert resumed.exit_code == 0, resumed.output
    assert f"Resumed workflow {wid}: status ENQUEUED" in resumed.stdout
    assert client.retrieve_workflow(wid).status().status == "ENQUEUED"


def test_cancel_of_a_finished_workflow_keeps_its_status(engine, durable):
    handle = engine.start_workflow(flows.three_steps, _tag(), 1)
    handle.result(timeout=10)
    result = durable("workflows", "cancel", handle.workflow_id)
    assert result.exit_code == 0
    assert "status SUCCESS" in result.stdout


def test_resume_continues_a_cancelled_workflow_from_its_last_step(engine, client, durable):
    tag = _tag()
    handle = engine.start_workflow(flows.wait_for_go, tag)
    _wait_for(lambda: len(client.list_steps(handle.workflow_id)) >= 1)

    cancelled = durable("workflows", "cancel", handle.workflow_id)
    assert cancelled.exit_code == 0, cancelled.output
    with pytest.raises(WorkflowCancelled):
        handle.result(timeout=10)

    resumed = durable("workflows", "resume", handle.workflow_id)
    assert resumed.exit_code == 0, resumed.output
    client.send(handle.workflow_id, "go", topic="go")
    assert engine.retrieve_workflow(handle.workflow_id).result(timeout=15) == "go"
    assert flows.CALLS[tag + ":before"] == 1  # the completed step was not run again
    assert flows.CALLS[tag + ":after"] == 1


def test_fork_reruns_from_the_start_step(engine, client, durable, durable_json):
    tag = _tag()
    handle = engine.start_workflow(flows.three_steps, tag, 3)
    assert handle.result(timeout=10) == 333
    new_id = f"fork-{tag}"

    forked = durable_json(
        "workflows", "fork", handle.workflow_id, "--start-step", "3", "--workflow-id", new_id
    )
    assert forked == {"workflow_id": new_id, "forked_from": handle.workflow_id}
    assert engine.retrieve_workflow(new_id).result(timeout=15) == 333
    assert (flows.CALLS[tag + ":1"], flows.CALLS[tag + ":2"], flows.CALLS[tag + ":3"]) == (1, 1, 2)

    human = durable("workflows", "fork", handle.workflow_id, "--start-step", "1")
    assert human.exit_code == 0, human.output
    second = human.stdout.strip().rsplit(": ", 1)[1]
    assert engine.retrieve_workflow(second).result(timeout=15) == 333
    assert flows.CALLS[tag + ":1"] == 2

    # The Client takes the new ID as ``workflow_id=``, as API.md says.
    third = client.fork_workflow(handle.workflow_id, 2, workflow_id=f"kw-{tag}")
    assert third.workflow_id == f"kw-{tag}"


def test_queues_counts_enqueued_workflows(engine, client, durable, durable_json, database_url):
    _parked(client, _tag(), 1)
    _parked(client, _tag(), 2)
    client.enqueue(
        "cli_parked", "tests.cli.flows.three_steps", _tag(), 3, application_version="v-old"
    )
    client.enqueue(
        "cli_parked", "tests.cli.flows.three_steps", _tag(), 4,
        application_version=engine.application_version,
    )  # fmt: skip
    entry = next(q for q in durable_json("queues") if q["queue"] == "cli_parked")
    assert (entry["ENQUEUED"], entry["PENDING"], entry["paused"]) == (4, 0, False)
    # Which release's work waits there, and which of those no live executor runs.
    assert entry["versions"] == {
        "": {"ENQUEUED": 2, "PENDING": 0},
        "v-old": {"ENQUEUED": 1, "PENDING": 0},
        engine.application_version: {"ENQUEUED": 1, "PENDING": 0},
    }
    assert entry["unserved_versions"] == ["v-old"]
    # A terminal wide enough for every column: rich shortens cells to the width it is given.
    table = run_cli(database_url, "queues", env={"COLUMNS": "400"})
    assert table.exit_code == 0 and "cli_parked" in table.stdout
    assert "no live worker" in table.stdout


def test_gc_deletes_finished_workflows_only(engine, client, durable, durable_json):
    handle = engine.start_workflow(flows.three_steps, _tag(), 1)
    handle.result(timeout=10)
    parked = _parked(client, _tag(), 1)

    kept = durable("gc", "--older-than", "1d")
    assert kept.exit_code == 0 and "Deleted 0 " in kept.stdout
    gone = durable("gc", "--older-than", "0s")
    assert gone.exit_code == 0, gone.output
    assert "Deleted 1 " in gone.stdout
    remaining = {w["workflow_id"] for w in durable_json("workflows", "list")}
    assert remaining == {parked}


@pytest.mark.parametrize("bad", ["7x", "-1d", "d", ""])
def test_gc_rejects_bad_durations(durable, bad):
    result = durable("gc", "--older-than", bad)
    assert result.exit_code == 2
    assert "--older-than" in result.stderr


def test_migrate_is_idempotent_and_prints_the_version(durable):
    first = durable("migrate")
    second = durable("migrate")
    assert first.exit_code == 0 and second.exit_code == 0, first.output
    assert f"schema version {CURRENT_VERSION}." in second.stdout
