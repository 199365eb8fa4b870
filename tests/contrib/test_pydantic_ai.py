"""DurableAgent: one step per model request and tool call, sync and async, and a SIGKILL
mid-run that resumes without repeating a completed model request or tool call."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pydantic_ai")

from tests import processes  # noqa: E402
from tests.contrib.agent_app import async_agent, durable, sync_agent, tool_calls  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def agent_steps(engine, workflow_id: str) -> list[str]:
    return [s.name for s in engine.list_steps(workflow_id) if not s.name.startswith("durable.")]


@pytest.mark.parametrize("wf", [sync_agent, async_agent], ids=["sync", "async"])
def test_one_step_per_model_request_and_tool_call(engine, wf):
    tool_calls.clear()
    handle = engine.start_workflow(wf, "hi")
    assert handle.result(timeout=60) == '{"add":0,"shout":"A"}'
    assert agent_steps(engine, handle.workflow_id) == [
        "model:test",
        "tool:add",
        "tool:shout",
        "model:test",
    ]
    assert tool_calls == ["add", "shout"]


def test_a_finished_run_replays_without_calling_anything(engine):
    tool_calls.clear()
    handle = engine.start_workflow(sync_agent, "hi", workflow_id="agents-replay")
    first = handle.result(timeout=60)
    last = max(s.step_id for s in engine.list_steps("agents-replay"))
    fork = engine.fork_workflow("agents-replay", last + 1)  # every step recorded: all replayed
    assert fork.result(timeout=60) == first
    assert tool_calls == ["add", "shout"]


def test_fork_from_the_second_tool_call_reruns_only_what_follows(engine):
    tool_calls.clear()
    handle = engine.start_workflow(sync_agent, "hi", workflow_id="agents-fork")
    first = handle.result(timeout=60)
    steps = engine.list_steps("agents-fork")
    second_tool = [s.step_id for s in steps if s.name.startswith("tool:")][1]
    assert next(s.name for s in steps if s.step_id == second_tool) == "tool:shout"
    tool_calls.clear()
    fork = engine.fork_workflow("agents-fork", second_tool)
    assert fork.result(timeout=60) == first
    assert tool_calls == ["shout"]  # add came from the record; shout and what follows ran
    assert agent_steps(engine, fork.workflow_id) == agent_steps(engine, "agents-fork")


def test_outside_a_workflow_it_is_the_plain_agent():
    tool_calls.clear()
    assert durable.run_sync("hi").output == '{"add":0,"shout":"A"}'
    # The plain agent runs the two tool calls concurrently: either may start first.
    assert sorted(tool_calls) == ["add", "shout"]


def _spawn(
    database_url: str, workdir: Path, hang: bool, *extra: str, workflow_id: str = "agent-crash-1"
) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), DURABLE_AGENT_DIR=str(workdir))
    if hang:
        env["DURABLE_AGENT_HANG"] = "1"
    return processes.spawn(
        [sys.executable, "-m", "tests.contrib.agent_app", database_url, workflow_id, *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _counts(workdir: Path) -> dict[str, int]:
    return {p.stem: len(p.read_text().splitlines()) for p in sorted(workdir.glob("*.count"))}


@pytest.mark.crash
def test_sigkill_mid_run_resumes_without_repeating_completed_calls(database_url, tmp_path):
    first = _spawn(database_url, tmp_path, hang=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "hanging").exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the run never reached the slow tool"
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    # Two model requests and fetch finished before the kill; slow was interrupted.
    assert _counts(tmp_path) == {"fetch": 1, "model": 2, "slow": 1}

    second = _spawn(database_url, tmp_path, hang=False)
    out, err = second.communicate(timeout=90)
    assert second.returncode == 0, err
    assert out.strip() == "done"
    # Nothing completed ran again: only the interrupted slow call, then the final request.
    assert _counts(tmp_path) == {"fetch": 1, "model": 3, "slow": 2}


def test_events_reach_the_stream_in_order(engine):
    from durable_core import read_stream

    handle = engine.start_workflow(sync_agent, "hi", workflow_id="agents-stream")
    handle.result(timeout=60)
    events = list(read_stream("agents-stream", durable.stream_key or ""))
    kinds = [e["event_kind"] for e in events]
    assert kinds.index("function_tool_call") < kinds.index("function_tool_result")
    assert kinds.index("function_tool_result") < kinds.index("final_result")
    calls = [e["part"]["tool_name"] for e in events if e["event_kind"] == "function_tool_call"]
    results = [e["part"]["tool_name"] for e in events if e["event_kind"] == "function_tool_result"]
    assert calls == results == ["add", "shout"]
    text = "".join(
        e["delta"]["content_delta"]
        for e in events
        if e["event_kind"] == "part_delta" and e["delta"]["part_delta_kind"] == "text"
    )
    assert '{"add":0,"shout":"A"}'.startswith(text) and text


@pytest.mark.crash
def test_an_approval_waits_across_a_restart_and_continues_on_send(database_url, tmp_path):
    from durable_core import Client, Engine
    from durable_core.contrib.pydantic_ai import APPROVAL_TOPIC

    Engine(database_url, run_scheduler=False, queues=[]).launch().shutdown()  # migrate
    first = _spawn(database_url, tmp_path, False, "approval", workflow_id="agent-approval-1")
    try:
        with Client(database_url) as client:
            pending = client.get_event("agent-approval-1", APPROVAL_TOPIC, timeout=60)
            assert pending == [
                {"tool_call_id": "call-1", "tool_name": "delete", "args": {"path": "/tmp/x"}}
            ]
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
            assert _counts(tmp_path) == {"approval_model": 1}  # asked; nothing deleted yet

            second = _spawn(
                database_url, tmp_path, False, "approval", workflow_id="agent-approval-1"
            )
            client.send("agent-approval-1", {"call-1": True}, topic=APPROVAL_TOPIC)
            out, err = second.communicate(timeout=90)
    finally:
        for proc in (first,):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert second.returncode == 0, err
    assert out.strip() == "tool said: deleted /tmp/x"
    # The first model request came from its checkpoint; the tool ran once, after approval.
    assert _counts(tmp_path) == {"approval_model": 2, "delete": 1}


def test_a_denied_tool_call_reaches_the_model_as_denied(engine, tmp_path, monkeypatch):
    from durable_core.contrib.pydantic_ai import APPROVAL_TOPIC
    from tests.contrib.agent_app import approval_run

    monkeypatch.setenv("DURABLE_AGENT_DIR", str(tmp_path))
    handle = engine.start_workflow(approval_run, "go", workflow_id="agents-deny")
    assert engine.get_event("agents-deny", APPROVAL_TOPIC, timeout=60)
    engine.send("agents-deny", "not a decision", topic=APPROVAL_TOPIC)  # ignored, still waiting
    engine.send("agents-deny", {"approved": False, "message": "no way"}, topic=APPROVAL_TOPIC)
    assert handle.result(timeout=60) == "tool said: no way"


def test_run_stream_in_an_async_workflow_is_durable_and_replays(engine):
    from tests.contrib.agent_app import streamed_agent

    tool_calls.clear()
    handle = engine.start_workflow(streamed_agent, "hi", workflow_id="agents-run-stream")
    chunks = handle.result(timeout=60)
    assert chunks[-1] == '{"add":0,"shout":"A"}' and len(chunks) > 1
    assert agent_steps(engine, "agents-run-stream") == [
        "model:test",
        "tool:add",
        "tool:shout",
        "model:test",
    ]
    last = max(s.step_id for s in engine.list_steps("agents-run-stream"))
    assert engine.fork_workflow("agents-run-stream", last + 1).result(timeout=60) == chunks
    assert tool_calls == ["add", "shout"]


def test_an_async_run_waits_for_approval_and_continues(engine, tmp_path, monkeypatch):
    from durable_core.contrib.pydantic_ai import APPROVAL_TOPIC
    from tests.contrib.agent_app import async_approval_run

    monkeypatch.setenv("DURABLE_AGENT_DIR", str(tmp_path))
    handle = engine.start_workflow(async_approval_run, "go", workflow_id="agents-async-ok")
    assert engine.get_event("agents-async-ok", APPROVAL_TOPIC, timeout=60)
    engine.send("agents-async-ok", True, topic=APPROVAL_TOPIC)
    assert handle.result(timeout=60) == "tool said: deleted /tmp/x"
    assert _counts(tmp_path) == {"approval_model": 2, "delete": 1}


def test_a_failed_model_request_is_retried_by_the_step_policy(engine, tmp_path, monkeypatch):
    from tests.contrib.agent_app import flaky_run

    monkeypatch.setenv("DURABLE_AGENT_DIR", str(tmp_path))
    handle = engine.start_workflow(flaky_run, "go", workflow_id="agents-flaky")
    assert handle.result(timeout=60) == "recovered"
    assert _counts(tmp_path) == {"flaky_model": 2}
    assert agent_steps(engine, "agents-flaky") == ["model:flaky"]


def test_a_named_agent_is_also_a_workflow_of_its_own(engine):
    tool_calls.clear()
    handle = engine.start_workflow(durable.workflow, "hi", workflow_id="agents-own")
    assert handle.result(timeout=60) == '{"add":0,"shout":"A"}'
    assert engine.get_workflow_status("agents-own").name == "pydantic_ai.agent:contrib_tools"
    assert agent_steps(engine, "agents-own") == [
        "model:test",
        "tool:add",
        "tool:shout",
        "model:test",
    ]


def test_bad_arguments_name_themselves():
    from pydantic_ai import Agent

    from durable_core.contrib.pydantic_ai import DurableAgent

    with pytest.raises(TypeError, match="wrapped must be a pydantic_ai.Agent"):
        DurableAgent("openai:gpt-4o")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs a name"):
        _ = DurableAgent(Agent("test")).workflow
