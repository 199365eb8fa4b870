"""The agents of the tests. ``durable`` (a TestModel calling two tools) runs in the test
process. The process tests' agents: every model request and tool call appends a line to
a counter file in ``DURABLE_AGENT_DIR``; the tool ``slow`` blocks forever on its first call
while ``DURABLE_AGENT_HANG`` is set, so the parent can SIGKILL the process mid-run.

Run: ``python -m tests.contrib.agent_app URL WORKFLOW_ID`` starts (or resumes) the workflow
and prints its result."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.models.test import TestModel

from durable_core import Engine, workflow
from durable_core.contrib.pydantic_ai import DurableAgent

tool_calls: list[str] = []

tools_agent = Agent(TestModel(), name="contrib_tools")


@tools_agent.tool_plain
def add(a: int, b: int) -> int:
    tool_calls.append("add")
    return a + b


@tools_agent.tool_plain
def shout(text: str) -> str:
    tool_calls.append("shout")
    return text.upper()


durable = DurableAgent(tools_agent)


@workflow(name="tests.contrib.sync_agent")
def sync_agent(prompt: str) -> str:
    return str(durable.run_sync(prompt).output)


@workflow(name="tests.contrib.async_agent")
async def async_agent(prompt: str) -> str:
    return str((await durable.run(prompt)).output)


def _count(name: str) -> int:
    """Append a line to counter ``name``; the number of lines before it."""
    path = Path(os.environ["DURABLE_AGENT_DIR"]) / f"{name}.count"
    before = len(path.read_text().splitlines()) if path.exists() else 0
    with path.open("a") as f:
        f.write("x\n")
    return before


def plan(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Turn 1 calls fetch, turn 2 calls slow, turn 3 answers."""
    _count("model")
    turn = sum(isinstance(m, ModelResponse) for m in messages)
    if turn == 0:
        return ModelResponse(parts=[ToolCallPart("fetch", {"url": "https://example.org"})])
    if turn == 1:
        return ModelResponse(parts=[ToolCallPart("slow", {"n": 21})])
    return ModelResponse(parts=[TextPart("done")])


agent = Agent(FunctionModel(plan, model_name="planner"), name="crash_agent")


@agent.tool_plain
def fetch(url: str) -> str:
    _count("fetch")
    return f"page at {url}"


@agent.tool_plain
def slow(n: int) -> int:
    if _count("slow") == 0 and os.environ.get("DURABLE_AGENT_HANG"):
        (Path(os.environ["DURABLE_AGENT_DIR"]) / "hanging").touch()
        threading.Event().wait()
    return n * 2


# No event stream: model requests go through Model.request (FunctionModel without a
# stream_function cannot stream).
durable_agent = DurableAgent(agent, stream_key=None)


@workflow(name="tests.contrib.agent_run")
def agent_run(prompt: str) -> str:
    result = durable_agent.run_sync(prompt)
    return str(result.output)


def ask_then_answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Turn 1 asks to delete a file (a tool needing approval); turn 2 reports what happened."""
    _count("approval_model")
    if not any(isinstance(m, ModelResponse) for m in messages):
        return ModelResponse(parts=[ToolCallPart("delete", {"path": "/tmp/x"}, "call-1")])
    returned = [
        p.content
        for m in messages
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, ToolReturnPart)
    ]
    return ModelResponse(parts=[TextPart(f"tool said: {returned[-1]}")])


approval_agent = Agent(FunctionModel(ask_then_answer, model_name="asker"), name="approval_agent")


@approval_agent.tool_plain(requires_approval=True)
def delete(path: str) -> str:
    _count("delete")
    return f"deleted {path}"


durable_approval_agent = DurableAgent(approval_agent, stream_key=None)


@workflow(name="tests.contrib.approval_run")
def approval_run(prompt: str) -> str:
    return str(durable_approval_agent.run_sync(prompt).output)


async def plan_stream(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls]:
    """``plan``'s answers, streamed: a tool call as two deltas of its arguments, text word by
    word. With ``DURABLE_AGENT_HANG_MODEL`` set, the second request blocks forever after its
    first delta, the first time."""
    _count("stream_model")
    turn = sum(isinstance(m, ModelResponse) for m in messages)
    if turn == 0:
        args = json.dumps({"url": "https://example.org"})
        yield {0: DeltaToolCall("fetch", args[:10], tool_call_id="fetch-1")}
        yield {0: DeltaToolCall(json_args=args[10:])}
    elif turn == 1:
        yield {0: DeltaToolCall("slow", '{"n": ', tool_call_id="slow-1")}
        if os.environ.get("DURABLE_AGENT_HANG_MODEL") and _count("stream_hang") == 0:
            (Path(os.environ["DURABLE_AGENT_DIR"]) / "hanging").touch()
            threading.Event().wait()  # mid-request: the SIGKILL lands here
        yield {0: DeltaToolCall(json_args="21}")}
    else:
        for word in ("all ", "done"):
            yield word


stream_agent = Agent(
    FunctionModel(plan, stream_function=plan_stream, model_name="streamer"), name="stream_agent"
)
stream_agent.tool_plain(fetch)
stream_agent.tool_plain(slow)
durable_stream_agent = DurableAgent(stream_agent)


@workflow(name="tests.contrib.streamed_run")
def streamed_run(prompt: str) -> str:
    return str(durable_stream_agent.run_sync(prompt).output)


def main() -> None:
    url, workflow_id = sys.argv[1], sys.argv[2]
    which = sys.argv[3] if len(sys.argv) > 3 else ""
    wf = {"approval": approval_run, "stream": streamed_run}.get(which, agent_run)
    with Engine(url, executor_id="agents-crash-test", run_scheduler=False) as engine:
        handle = engine.start_workflow(wf, "go", workflow_id=workflow_id)
        print(handle.result(timeout=60), flush=True)


if __name__ == "__main__":
    main()


@workflow(name="tests.contrib.streamed_agent")
async def streamed_agent(prompt: str) -> list[str]:
    async with durable.run_stream(prompt) as result:
        return [text async for text in result.stream_output(debounce_by=None)]


@workflow(name="tests.contrib.async_approval_run")
async def async_approval_run(prompt: str) -> str:
    return str((await durable_approval_agent.run(prompt)).output)


def flaky(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Fails on its first request, as a provider's outage would; answers after that."""
    if _count("flaky_model") == 0:
        raise ConnectionError("provider unavailable")
    return ModelResponse(parts=[TextPart("recovered")])


durable_flaky_agent = DurableAgent(
    Agent(FunctionModel(flaky, model_name="flaky")),
    stream_key=None,
    model_step={"retries": 2, "retry_delay": 0.01},
)


@workflow(name="tests.contrib.flaky_run")
def flaky_run(prompt: str) -> str:
    return str(durable_flaky_agent.run_sync(prompt).output)
