"""Live tokens: a model step appends each part event to the stream as the provider delivers
it, so readers see the first delta before the step ends; a replay (and a restart after a
SIGKILL) writes none of a completed model step's events again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import uuid

import pytest

pytest.importorskip("pydantic_ai")

from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.messages import ModelMessage  # noqa: E402
from pydantic_ai.models.function import AgentInfo, FunctionModel  # noqa: E402

from durable_core import workflow, workflow_id  # noqa: E402
from durable_core.contrib.pydantic_ai import EVENTS_STREAM, DurableAgent  # noqa: E402
from tests.contrib.agent_app import sync_agent  # noqa: E402
from tests.contrib.test_pydantic_ai import _counts, _spawn  # noqa: E402

MODEL_KINDS = {"part_start", "part_delta", "part_end", "final_result"}
gates: dict[str, threading.Event] = {}


def _gate(wid: str) -> threading.Event:
    return gates.setdefault(wid, threading.Event())


async def gated(messages: list[ModelMessage], info: AgentInfo):
    """Streams "Hello " and waits, inside the model step, until the test has seen it."""
    yield "Hello "
    await asyncio.to_thread(_gate(workflow_id()).wait, 60)
    yield "world"


live_agent = DurableAgent(
    Agent(FunctionModel(stream_function=gated, model_name="gated"), name="live_agent")
)


@workflow(name="tests.contrib.live_sync")
def live_sync(prompt: str) -> str:
    return str(live_agent.run_sync(prompt).output)


@workflow(name="tests.contrib.live_async")
async def live_async(prompt: str) -> str:
    return str((await live_agent.run(prompt)).output)


flaky_streams: dict[str, int] = {}


async def flaky(messages: list[ModelMessage], info: AgentInfo):
    """Streams a token, then fails the first time (a provider dropping the stream)."""
    yield "partial "
    wid = workflow_id()
    flaky_streams[wid] = flaky_streams.get(wid, 0) + 1
    if flaky_streams[wid] == 1:
        raise ConnectionError("the provider dropped the stream")
    yield "answer"


flaky_agent = DurableAgent(
    Agent(FunctionModel(stream_function=flaky, model_name="flaky_live"), name="flaky_live"),
    model_step={"retries": 2, "retry_delay": 0.01},
)


@workflow(name="tests.contrib.live_flaky")
async def live_flaky(prompt: str) -> str:
    return str((await flaky_agent.run(prompt)).output)


def _so_far(database_url: str, wid: str) -> list[dict]:
    """The events in the stream now (a reader would wait for the unfinished run's next)."""
    from durable_core import Client

    with Client(database_url) as client:
        rows = client.store.list_stream_values(wid)
    return [json.loads(r[2]) for r in rows if r[0] == EVENTS_STREAM]


def _text(events: list[dict]) -> str:
    return "".join(
        [e["part"]["content"] for e in events if e["event_kind"] == "part_start"]
        + [e["delta"]["content_delta"] for e in events if e["event_kind"] == "part_delta"]
    )


@pytest.mark.parametrize("wf", [live_sync, live_async], ids=["sync", "async"])
def test_readers_see_the_first_delta_before_the_model_step_ends(engine, wf):
    wid = f"agents-live-{uuid.uuid4()}"
    handle = engine.start_workflow(wf, "hi", workflow_id=wid)
    first = next(iter(engine.read_stream(wid, EVENTS_STREAM)))
    assert first["event_kind"] == "part_start" and first["part"]["content"] == "Hello "
    assert engine.list_steps(wid) == []  # the model step is still running
    _gate(wid).set()
    assert handle.result(timeout=60) == "Hello world"

    events = list(engine.read_stream(wid, EVENTS_STREAM))
    [model] = engine.list_steps(wid)
    assert model.name == "model:gated"
    assert {e["event_kind"] for e in events} <= MODEL_KINDS
    assert [e["event_kind"] for e in events].count("part_start") == 1
    assert [e["event_kind"] for e in events].count("final_result") == 1
    assert all(e["durable"] == {"step_id": model.step_id, "attempt": 1} for e in events)
    assert _text(events) == "Hello world"

    # A replay of the whole run: the response comes from the record, no event is written again.
    replay = engine.fork_workflow(wid, model.step_id + 1)
    assert replay.result(timeout=60) == "Hello world"
    assert list(engine.read_stream(replay.workflow_id, EVENTS_STREAM)) == events


def test_a_retried_model_request_leaves_its_partial_events_before_the_retrys(engine):
    wid = f"agents-live-retry-{uuid.uuid4()}"
    assert engine.start_workflow(live_flaky, "hi", workflow_id=wid).result(timeout=60) == (
        "partial answer"
    )
    [model] = engine.list_steps(wid)
    events = list(engine.read_stream(wid, EVENTS_STREAM))
    starts = [e for e in events if e["event_kind"] == "part_start"]
    assert [e["durable"] for e in starts] == [
        {"step_id": model.step_id, "attempt": 1},  # the failed attempt's token stays
        {"step_id": model.step_id, "attempt": 2},
    ]
    # A reader that drops a step's events when it starts again (part_start of index 0)
    # shows the answer once.
    retry = events.index(starts[1])
    assert _text(events[retry:]) == "partial answer"
    assert _text(events[:retry]) == "partial "


def test_a_replay_with_tools_writes_each_event_once(engine):
    handle = engine.start_workflow(sync_agent, "hi", workflow_id="agents-live-tools")
    handle.result(timeout=60)
    events = list(engine.read_stream("agents-live-tools", EVENTS_STREAM))
    steps = engine.list_steps("agents-live-tools")
    models = [s.step_id for s in steps if s.name.startswith("model:")]
    # Each model step's events, tagged with it, start once (one part_start of index 0).
    for model in models:
        mine = [e for e in events if e.get("durable", {}).get("step_id") == model]
        assert [e["index"] for e in mine if e["event_kind"] == "part_start"][:1] == [0]
        assert [e["event_kind"] for e in mine].count("final_result") <= 1
    assert {e["durable"]["step_id"] for e in events if "durable" in e} == set(models)
    assert all("durable" in e for e in events if e["event_kind"] in MODEL_KINDS)
    assert all("durable" not in e for e in events if e["event_kind"] not in MODEL_KINDS)
    # The tool events stay checkpoints of the body, after the model response that asked.
    kinds = [e["event_kind"] for e in events]
    assert kinds.index("part_start") < kinds.index("function_tool_call")

    replay = engine.fork_workflow("agents-live-tools", max(s.step_id for s in steps) + 1)
    replay.result(timeout=60)
    assert list(engine.read_stream(replay.workflow_id, EVENTS_STREAM)) == events


@pytest.mark.crash
def test_sigkill_mid_run_leaves_each_completed_model_steps_events_once(database_url, tmp_path):
    from durable_core import Client

    wid = "agent-stream-crash-1"
    first = _spawn(database_url, tmp_path, True, "stream", workflow_id=wid)
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
    # Two streamed model requests and fetch finished before the kill; slow was interrupted.
    assert _counts(tmp_path) == {"fetch": 1, "slow": 1, "stream_model": 2}
    before = _so_far(database_url, wid)

    second = _spawn(database_url, tmp_path, False, "stream", workflow_id=wid)
    out, err = second.communicate(timeout=90)
    assert second.returncode == 0, err
    assert out.strip() == "all done"
    assert _counts(tmp_path) == {"fetch": 1, "slow": 2, "stream_model": 3}

    with Client(database_url) as client:
        events = list(client.read_stream(wid, EVENTS_STREAM))
        steps = client.list_steps(wid)
    assert events[: len(before)] == before  # the restart appended, it rewrote nothing
    models = [s.step_id for s in steps if s.name == "model:streamer"]
    assert len(models) == 3
    for model in models:
        mine = [e for e in events if e.get("durable", {}).get("step_id") == model]
        starts = [e for e in mine if e["event_kind"] == "part_start" and e["index"] == 0]
        assert len(starts) == 1, (model, mine)  # once: the replay wrote none of it again
    kinds = [e["event_kind"] for e in events]
    assert kinds.count("function_tool_call") == kinds.count("function_tool_result") == 2
    tool_args = [e["part"]["args"] for e in events if e["event_kind"] == "function_tool_call"]
    assert tool_args[0] == '{"url": "https://example.org"}'  # the two deltas, joined
    last = [e for e in events if e.get("durable", {}).get("step_id") == models[2]]
    assert _text(last) == "all done"


@pytest.mark.crash
def test_sigkill_inside_a_model_request_leaves_its_partial_events_then_the_whole(
    database_url, tmp_path, monkeypatch
):
    """The documented duplicate rule: the interrupted attempt's events stay, the next attempt
    of the same step writes its own after them, starting with a part_start of index 0."""
    from durable_core import Client

    wid = "agent-stream-crash-2"
    monkeypatch.setenv("DURABLE_AGENT_HANG_MODEL", "1")
    first = _spawn(database_url, tmp_path, False, "stream", workflow_id=wid)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "hanging").exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the run never reached the second request"
            time.sleep(0.05)
        partial = _so_far(database_url, wid)  # the partial tokens are there before the kill
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    monkeypatch.delenv("DURABLE_AGENT_HANG_MODEL")
    assert _counts(tmp_path) == {"fetch": 1, "stream_hang": 1, "stream_model": 2}
    assert partial[-1]["event_kind"] == "part_start"
    assert partial[-1]["part"]["args"] == '{"n": '  # the first delta of the hung request

    second = _spawn(database_url, tmp_path, False, "stream", workflow_id=wid)
    out, err = second.communicate(timeout=90)
    assert second.returncode == 0, err
    assert out.strip() == "all done"
    assert _counts(tmp_path) == {"fetch": 1, "slow": 1, "stream_hang": 1, "stream_model": 4}

    with Client(database_url) as client:
        events = list(client.read_stream(wid, EVENTS_STREAM))
        steps = client.list_steps(wid)
    assert events[: len(partial)] == partial
    first_model, second_model, third_model = [
        s.step_id for s in steps if s.name == "model:streamer"
    ]

    def starts(model: int) -> list[dict]:
        return [
            e
            for e in events
            if e.get("durable", {}).get("step_id") == model
            and e["event_kind"] == "part_start"
            and e["index"] == 0
        ]

    assert len(starts(first_model)) == len(starts(third_model)) == 1  # completed: once
    interrupted, whole = starts(second_model)  # the interrupted attempt, then the whole one
    assert interrupted == partial[-1] == whole  # the same first delta, written twice
    assert events[len(partial) - 1] == interrupted and whole in events[len(partial) :]
    assert whole["durable"] == {"step_id": second_model, "attempt": 1}  # a new execution
    [call] = [
        e
        for e in events
        if e["event_kind"] == "function_tool_call" and e["part"]["tool_name"] == "slow"
    ]
    assert call["part"]["args"] == '{"n": 21}'  # the tool ran with the whole attempt's arguments
