"""History export and replay; patched() and deprecate_patch() across a deploy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from durable_core import deprecate_patch, patched, recv, sleep, step, workflow
from durable_core.errors import ConfigurationError, NonDeterministicWorkflow
from durable_core.testing import replay

RAN: list[str] = []


@step
def reserve(order: str) -> str:
    RAN.append("reserve")
    return f"r-{order}"


@step
def charge(order: str) -> str:
    RAN.append("charge")
    return f"c-{order}"


@step
def charge_card(order: str) -> str:  # what a rename of ``charge`` looks like
    RAN.append("charge_card")
    return f"c-{order}"


@step
def check_fraud(order: str) -> str:
    RAN.append("check_fraud")
    return "ok"


# The code of the "deployed" release; a test switches it to simulate a deploy.
RELEASE = {"version": 1}


@workflow
def checkout(order: str) -> dict:
    first = reserve(order)
    if RELEASE["version"] == 1:
        second = charge(order)
    elif RELEASE["version"] == 2:  # adds a fraud check for new executions only
        if patched("fraud-check"):
            second = check_fraud(order) + "+" + charge(order)
        else:
            second = charge(order)
    elif RELEASE["version"] == 3:  # the cleanup release: every old execution has finished
        deprecate_patch("fraud-check")
        second = check_fraud(order) + "+" + charge(order)
    elif RELEASE["version"] == "renamed":
        second = charge_card(order)
    else:  # a compatible change: same steps, different use of their results
        second = charge(order).upper()
    confirmation = recv("confirm", timeout=3600)
    sleep(0.01)
    return {"reserved": first, "charged": second, "confirmation": confirmation}


@pytest.fixture(autouse=True)
def release_1():
    RELEASE["version"] = 1
    RAN.clear()
    yield
    RELEASE["version"] = 1


def finished_history(engine, order: str) -> dict:
    handle = engine.start_workflow(checkout, order, workflow_id=order)
    engine.send(order, "yes", topic="confirm")
    handle.result(timeout=10)
    return engine.export_workflow(order)


def test_export_holds_inputs_steps_messages_and_outcome(tengine):
    history = finished_history(tengine, "o1")
    assert history["format"] == "durable-workflows/history" and history["encoding"] == "json"
    w = history["workflow"]
    assert w["status"] == "SUCCESS" and w["name"].endswith("checkout")
    assert w["inputs"]["args"] == ["o1"] or "o1" in json.dumps(w["inputs"])
    names = [s["name"].rsplit(".", 1)[-1] for s in history["steps"] if s["step_id"] > 0]
    assert names == ["reserve", "charge", "recv", "sleep"]
    assert [m["message"] for m in history["messages"]] == ["yes"]
    assert history["messages"][0]["received"] is True
    json.dumps(history)  # plain JSON all the way down


def test_replay_accepts_the_same_and_a_compatible_change(tengine):
    history = finished_history(tengine, "o2")
    RAN.clear()
    result = replay(history)
    assert result.completed and result.result == {
        "reserved": "r-o2",
        "charged": "c-o2",
        "confirmation": "yes",
    }
    RELEASE["version"] = "compatible"
    assert replay(history).result["charged"] == "C-O2"
    assert RAN == []  # replay runs no step body: no side effects


def test_replay_detects_a_renamed_step(tengine):
    history = finished_history(tengine, "o3")
    RAN.clear()
    RELEASE["version"] = "renamed"
    with pytest.raises(NonDeterministicWorkflow) as info:
        replay(history)
    assert info.value.step_id == 2
    assert "charge" in str(info.value) and "charge_card" in str(info.value)
    assert RAN == []


def test_replay_of_a_workflow_this_process_does_not_register(tengine):
    """A configuration mistake (the declaring module is not imported), reported as one."""
    history = finished_history(tengine, "o5")
    history["workflow"]["name"] = "gone.module.checkout"
    with pytest.raises(ConfigurationError, match="No workflow named 'gone.module.checkout'"):
        replay(history)


def test_replay_of_an_unfinished_history_stops_where_it_ends(tengine):
    handle = tengine.start_workflow(checkout, "o4", workflow_id="o4")
    tengine.run_until_idle(advance_time=False)  # waiting for the confirmation
    assert handle.status().status == "PENDING"
    result = replay(tengine.export_workflow("o4"))
    assert not result.completed and result.steps_replayed >= 2


def test_replay_from_a_file_written_by_the_cli(tengine, tmp_path):
    finished_history(tengine, "o5")
    out = tmp_path / "o5.json"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    subprocess.run(
        [sys.executable, "-m", "durable_core", "--database-url", tengine.database_url]
        + ["workflows", "export", "o5", "--output", str(out)],
        check=True,
        env=env,
        timeout=60,
    )
    assert replay(out).completed
    printed = subprocess.run(
        [sys.executable, "-m", "durable_core", "--database-url", tengine.database_url]
        + ["workflows", "export", "o5"],
        check=True,
        env=env,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    assert json.loads(printed)["workflow"]["workflow_id"] == "o5"


def test_patched_replays_old_executions_the_old_way_and_runs_new_ones_the_new_way(tengine):
    old = tengine.start_workflow(checkout, "old", workflow_id="old")
    tengine.run_until_idle(advance_time=False)  # recorded under release 1, waits to confirm
    RELEASE["version"] = 2  # deploy
    new = tengine.start_workflow(checkout, "new", workflow_id="new")
    tengine.run_until_idle(advance_time=False)
    for wid in ("old", "new"):
        tengine.send(wid, "yes", topic="confirm")
    assert old.result(timeout=10)["charged"] == "c-old"  # replayed the old branch
    assert new.result(timeout=10)["charged"] == "ok+c-new"
    assert RAN.count("check_fraud") == 1
    new_names = [s.name for s in tengine.list_steps("new")][:4]
    assert new_names[1] == "durable.patch:fraud-check"
    assert [n.rsplit(".", 1)[-1] for n in new_names[::2]] == ["reserve", "check_fraud"]

    old_history, new_history = tengine.export_workflow("old"), tengine.export_workflow("new")
    assert replay(old_history).result["charged"] == "c-old"
    assert replay(new_history).result["charged"] == "ok+c-new"
    RELEASE["version"] = 1  # rolling back to code without the patch cannot replay new ones
    with pytest.raises(NonDeterministicWorkflow, match="durable.patch:fraud-check"):
        replay(new_history)
    RELEASE["version"] = 3  # the cleanup release replays executions that took the patch
    assert replay(new_history).result["charged"] == "ok+c-new"
    fresh = tengine.start_workflow(checkout, "fresh", workflow_id="fresh")
    tengine.run_until_idle(advance_time=False)
    tengine.send("fresh", "yes", topic="confirm")
    assert fresh.result(timeout=10)["charged"] == "ok+c-fresh"
    assert "durable.patch:fraud-check" not in [s.name for s in tengine.list_steps("fresh")]


def test_patched_outside_a_workflow_is_an_error():
    from durable_core.errors import NotInWorkflow

    with pytest.raises(NotInWorkflow):
        patched("x")
    with pytest.raises(NotInWorkflow):
        deprecate_patch("x")
