"""The research agent: a Pydantic AI agent made durable with ``DurableAgent``.

Every model request is a step ``model:<model name>`` and every tool call a step
``tool:<tool name>``, so a crash resumes the run without asking the model again or
re-running a finished tool call. ``publish_report`` needs a human's approval: the run waits
durably for a decision sent from ``POST /research/{id}/approval``. The run's events (tokens,
tool calls and results, the approval request) go to the stream ``pydantic_ai.events``, which
the page reads over Server-Sent Events; a model request's tokens are written by its step as the
model streams them, so the page shows them live.

By default the model is a scripted ``FunctionModel`` (no network, no API key); set
``AGENT_MODEL`` to a Pydantic AI model name (``openai:gpt-4o``, ``anthropic:claude-...``) to use
a real provider. The tools are stand-ins for a search API and a page reader."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator

from models import Note, Report
from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from service import durable
from sqlalchemy.dialects import postgresql, sqlite

from durable_core import close_stream, workflow, workflow_id, write_stream
from durable_core.contrib.pydantic_ai import EVENTS_STREAM, DurableAgent

# Simulated latency of each tool call and model request, so a crash can land mid-run.
STEP_DELAY = float(os.environ.get("AGENT_STEP_DELAY", "0.5"))
# ...and between two streamed tokens of an answer, so the page shows them arrive one by one.
TOKEN_DELAY = float(os.environ.get("AGENT_TOKEN_DELAY", str(STEP_DELAY / 5)))
# Calls still undecided after this many seconds are denied.
APPROVAL_TIMEOUT = float(os.environ.get("AGENT_APPROVAL_TIMEOUT", str(24 * 3600)))
# A file that gets one line per model request and tool call actually made (not replayed):
# what the crash test reads to show that nothing finished ran twice.
CALL_LOG = os.environ.get("AGENT_CALL_LOG")


def log_call(what: str) -> None:
    if CALL_LOG:
        with open(CALL_LOG, "a", encoding="utf-8") as f:
            f.write(what + "\n")


INSTRUCTIONS = """You are a research assistant. For the topic the user names: call web_search
once, call read_page for each URL it returns, then call publish_report with a short title and
a body of bullet points citing what you read. Finally answer in one sentence saying whether the
report was published."""


# -- the default model: a scripted researcher, no network ----------------------------------------


def _tool_returns(messages: list[ModelMessage], tool_name: str) -> list[ToolReturnPart]:
    return [
        part
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart) and part.tool_name == tool_name
    ]


def _topic(messages: list[ModelMessage]) -> str:
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    return "the topic"


def scripted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """What a diligent model would answer at this point of the conversation."""
    topic = _topic(messages)
    searched = _tool_returns(messages, "web_search")
    if not searched:
        return ModelResponse(parts=[ToolCallPart("web_search", {"query": topic}, "search-1")])
    urls = list(searched[-1].content)
    read = _tool_returns(messages, "read_page")
    if len(read) < len(urls):
        calls = [ToolCallPart("read_page", {"url": u}, f"read-{n}") for n, u in enumerate(urls, 1)]
        return ModelResponse(parts=list(calls))
    published = _tool_returns(messages, "publish_report")
    if not published:
        body = "\n".join(f"- {part.content}" for part in read)
        args = {"title": f"Report on {topic}", "body": body}
        return ModelResponse(parts=[ToolCallPart("publish_report", args, "publish-1")])
    if published[-1].outcome == "denied":
        answer = f"The report on {topic} was not published: {published[-1].content}"
    else:
        answer = f"The report on {topic} is published, citing {len(urls)} sources."
    return ModelResponse(parts=[TextPart(answer)])


async def scripted_stream(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls]:
    """The same answers, streamed: text word by word, tool calls as deltas."""
    log_call(f"model:turn-{sum(isinstance(m, ModelResponse) for m in messages)}")
    await asyncio.sleep(STEP_DELAY)
    response = scripted(messages, info)
    for n, part in enumerate(response.parts):
        if isinstance(part, TextPart):
            words = part.content.split(" ")
            for i, word in enumerate(words):
                if i:
                    await asyncio.sleep(TOKEN_DELAY)
                yield word if i == len(words) - 1 else word + " "
        elif isinstance(part, ToolCallPart):
            args = json.dumps(part.args_as_dict())
            delta = DeltaToolCall(part.tool_name, args, tool_call_id=part.tool_call_id)
            yield {n: delta}


def choose_model() -> Model | str:
    """``AGENT_MODEL`` (a Pydantic AI model name) if set, else the scripted researcher."""
    name = os.environ.get("AGENT_MODEL")
    if name:
        return name
    return FunctionModel(scripted, stream_function=scripted_stream, model_name="researcher")


research_agent = Agent(choose_model(), name="research", instructions=INSTRUCTIONS)


# -- tools ---------------------------------------------------------------------------------------
# A tool call is a plain step: it runs again only if the process died between its end and its
# checkpoint. Its writes are keyed by workflow ID, so a re-run writes nothing twice.


def _insert_once(table: type, values: dict, keys: list[str]) -> None:
    with durable.app_engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=keys)
        )


@research_agent.tool_plain
async def web_search(query: str) -> list[str]:
    """Search the web for ``query``; returns the URLs of the three best sources."""
    log_call(f"tool:web_search:{query}")
    await asyncio.sleep(STEP_DELAY)
    slug = "-".join(query.lower().split())[:40]
    return [f"https://example.org/{slug}/{n}" for n in ("overview", "history", "critique")]


@research_agent.tool_plain
async def read_page(url: str) -> str:
    """Read the page at ``url``; returns its key points and keeps them as a note."""
    log_call(f"tool:read_page:{url}")
    await asyncio.sleep(STEP_DELAY)
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    summary = f"Key points of {url.rsplit('/', 1)[-1]} (doc {digest})."
    values = {"workflow_id": workflow_id(), "url": url, "summary": summary}
    await asyncio.to_thread(_insert_once, Note, values, ["workflow_id", "url"])
    return summary


@research_agent.tool_plain(requires_approval=True)
async def publish_report(title: str, body: str) -> dict:
    """Publish the report. A human approves it first."""
    log_call(f"tool:publish_report:{title}")
    values = {"workflow_id": workflow_id(), "title": title, "body": body}
    await asyncio.to_thread(_insert_once, Report, values, ["workflow_id"])
    return {"published": True, "title": title}


researcher = DurableAgent(research_agent, approval_timeout=APPROVAL_TIMEOUT)


# -- the workflow --------------------------------------------------------------------------------


@workflow
def research(topic: str) -> dict:
    result = researcher.run_sync(topic)
    published = _tool_returns(result.all_messages(), "publish_report")
    status = "published" if published and published[-1].outcome == "success" else "rejected"
    outcome = {
        "status": status,
        "answer": str(result.output),
        "sources": len(_tool_returns(result.all_messages(), "read_page")),
    }
    write_stream(EVENTS_STREAM, {"event_kind": "done", **outcome})
    close_stream(EVENTS_STREAM)
    return outcome
