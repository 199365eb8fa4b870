"""An MCP server's tool listing is a step: a replay offers the model the tools the first run
saw, without listing them again, even after the server changed. The server is the MCP SDK's
``MCPServer``, in process (FastMCP's in-memory transport), so the test spawns nothing."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

pytest.importorskip("pydantic_ai")
pytest.importorskip("pydantic_ai.mcp", reason="pip install 'pydantic-ai-slim[mcp]'")

from mcp.server.mcpserver import MCPServer  # noqa: E402
from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.mcp import MCPToolset  # noqa: E402
from pydantic_ai.models.function import FunctionModel  # noqa: E402
from pydantic_ai.models.test import TestModel  # noqa: E402

from durable_core import workflow  # noqa: E402
from durable_core.contrib.pydantic_ai import DurableAgent  # noqa: E402

calls: dict[str, int] = {"list_tools": 0, "call": 0}


class CountingServer(MCPServer):
    async def list_tools(self, *args: Any, **kwargs: Any) -> Any:
        calls["list_tools"] += 1
        return await super().list_tools(*args, **kwargs)


def lookup(term: str) -> str:
    """Look a term up."""
    calls["call"] += 1
    return f"{term}: a fact from the MCP server"


server = CountingServer("facts")
server.add_tool(lookup, name="lookup")
served = ["lookup"]
mcp_agent = DurableAgent(
    Agent(TestModel(), name="mcp_agent", toolsets=[MCPToolset(server, id="facts")]),
    stream_key=None,
)


@workflow(name="tests.contrib.mcp_run")
def mcp_run(prompt: str) -> str:
    return str(mcp_agent.run_sync(prompt).output)


def serve_as(name: str) -> None:
    """The server's one tool, under ``name`` (a server that changed between two runs)."""
    server.remove_tool(served[0])
    server.add_tool(lookup, name=name)
    served[0] = name


def test_the_tool_listing_is_a_step_and_a_replay_does_not_list_again(engine):
    serve_as("lookup")
    calls.update(list_tools=0, call=0)
    handle = engine.start_workflow(mcp_run, "hi", workflow_id="agents-mcp")
    output = handle.result(timeout=60)
    assert output == '{"lookup":"a: a fact from the MCP server"}'
    steps = [s.name for s in engine.list_steps("agents-mcp")]
    assert steps == [
        "mcp:list_tools:facts",
        "model:test",
        "tool:lookup",
        "mcp:list_tools:facts",
        "model:test",
    ]
    assert calls == {"call": 1, "list_tools": 1}  # listed once per session

    # The server changes: its tool is renamed. A replay of the whole run still offers the
    # model the recorded ``lookup`` and takes every outcome from the record.
    serve_as("search")
    replay = engine.fork_workflow("agents-mcp", len(steps) + 1)
    assert replay.result(timeout=60) == output
    assert [s.name for s in engine.list_steps(replay.workflow_id)] == steps
    assert calls == {"call": 1, "list_tools": 1}

    # A fork from the second listing lists the changed server: the model sees ``search``.
    second_listing = [n for n, name in enumerate(steps, 1) if name.startswith("mcp:")][1]
    fork = engine.fork_workflow("agents-mcp", second_listing)
    fork.result(timeout=60)
    listed = engine.list_steps(fork.workflow_id)[second_listing - 1].result
    assert [tool["name"] for tool in listed] == ["search"]


# -- instructions, and no session on a replay ----------------------------------------------------

sessions = {"opened": 0}


@contextlib.asynccontextmanager
async def counting_lifespan(app: Any) -> Any:
    sessions["opened"] += 1  # the in-memory transport runs the server once per session
    yield {}


guide = MCPServer("guide", instructions="Cite the guide.", lifespan=counting_lifespan)
guide.add_tool(lookup, name="lookup")
seen_instructions: list[str | None] = []


def answer(messages: list[Any], info: Any) -> Any:
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart

    seen_instructions.append(info.instructions)
    if len(messages) == 1:
        return ModelResponse(parts=[ToolCallPart("lookup", {"term": "a"})])
    return ModelResponse(parts=[TextPart("answered")])


guided_agent = DurableAgent(
    Agent(
        FunctionModel(answer, model_name="guided"),
        toolsets=[MCPToolset(guide, id="guide", include_instructions=True)],
    ),
    stream_key=None,
)


@workflow(name="tests.contrib.mcp_guided")
def guided_run(prompt: str) -> str:
    return str(guided_agent.run_sync(prompt).output)


def test_instructions_are_a_step_and_a_replay_opens_no_session(engine):
    sessions["opened"] = 0
    seen_instructions.clear()
    handle = engine.start_workflow(guided_run, "hi", workflow_id="agents-mcp-guide")
    assert handle.result(timeout=60) == "answered"
    steps = [s.name for s in engine.list_steps("agents-mcp-guide")]
    assert steps == [
        "mcp:list_tools:guide",
        "mcp:get_instructions:guide",
        "model:guided",
        "tool:lookup",
        "mcp:list_tools:guide",
        "mcp:get_instructions:guide",
        "model:guided",
    ]
    assert all("Cite the guide." in (i or "") for i in seen_instructions)
    assert sessions["opened"] == 1  # one session for the run, opened by its first step

    # A replay of the whole run: instructions, tools and answers from the record, and the
    # server is not connected to at all.
    replay = engine.fork_workflow("agents-mcp-guide", len(steps) + 1)
    assert replay.result(timeout=60) == "answered"
    assert sessions["opened"] == 1
    assert len(seen_instructions) == 2  # the model was not asked again either
