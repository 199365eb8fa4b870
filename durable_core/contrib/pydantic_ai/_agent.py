"""``DurableAgent``: a Pydantic AI agent whose run, inside a workflow, checkpoints each model
request and tool call as a step, streams its events with ``write_stream`` and waits for tool
approvals with ``recv``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping
from contextlib import ExitStack, asynccontextmanager, contextmanager
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.agent import AbstractAgent, AgentRunResult, WrapperAgent
from pydantic_ai.messages import (
    AgentStreamEvent,
    FinalResultEvent,
    PartDeltaEvent,
    PartEndEvent,
    PartStartEvent,
)
from pydantic_ai.result import StreamedRunResult
from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults, RunContext, ToolDenied
from pydantic_ai.toolsets import AbstractToolset

from durable_core import (
    recv,
    recv_async,
    set_event,
    set_event_async,
    workflow,
    write_stream,
    write_stream_async,
)

from ._approvals import apply_decision, pending_calls, timed_out
from ._codec import dump_event
from ._context import in_workflow
from ._model import DurableModel
from ._toolset import DurableToolset

log = logging.getLogger("durable_core.contrib.pydantic_ai")

#: The stream key events are written to, and the topic (and event key) of tool approvals.
EVENTS_STREAM = "pydantic_ai.events"
APPROVAL_TOPIC = "pydantic_ai.approval"

#: The events of a model response (``ModelResponseStreamEvent``), written by the model step.
_MODEL_EVENTS = (PartStartEvent, PartDeltaEvent, PartEndEvent, FinalResultEvent)


class DurableAgent(WrapperAgent[Any, Any]):
    """Wraps a ``pydantic_ai.Agent`` for durable runs; outside a workflow it runs as the agent.

    Inside a workflow, ``run`` / ``run_sync`` / ``run_stream`` run each model request as a step
    ``model:<model name>`` and each tool call as a step ``tool:<tool name>`` (tool calls one at a
    time, so a replay takes the same step IDs). Every agent event is appended, as JSON, to this
    workflow's stream ``stream_key`` (``None``: none). With ``approvals`` (the default), a tool
    that needs approval ends the model's turn as Pydantic AI's ``DeferredToolRequests``; the run
    publishes the pending calls with ``set_event(approval_topic, ...)`` and on the stream, waits
    durably with ``recv(approval_topic)`` for the decisions and continues. ``model_step`` and
    ``tool_step`` are keyword arguments for ``@step`` (``retries``, ``retry_delay``, ...).

    With a ``name`` (or a named agent), ``self.workflow`` is a registered workflow that runs the
    agent on a prompt and returns its output, for ``engine.start_workflow(agent.workflow, ...)``.
    """

    def __init__(
        self,
        wrapped: AbstractAgent[Any, Any],
        *,
        name: str | None = None,
        stream_key: str | None = EVENTS_STREAM,
        approvals: bool = True,
        approval_topic: str = APPROVAL_TOPIC,
        approval_timeout: float | None = None,
        model_step: Mapping[str, Any] | None = None,
        tool_step: Mapping[str, Any] | None = None,
    ):
        if not isinstance(wrapped, Agent):
            raise TypeError(f"wrapped must be a pydantic_ai.Agent, not {type(wrapped).__name__}")
        super().__init__(wrapped)
        self._durable_name = name or wrapped.name
        self.stream_key = stream_key
        self.approvals = approvals
        self.approval_topic = approval_topic
        self.approval_timeout = approval_timeout
        self.model_step = dict(model_step or {})
        self.tool_step = dict(tool_step or {})
        self._workflow: Any = None
        if self._durable_name is not None:
            self._workflow = workflow(name=f"pydantic_ai.agent:{self._durable_name}")(
                self._run_prompt
            )

    @property
    def workflow(self) -> Any:
        """The registered workflow ``pydantic_ai.agent:<name>(prompt)`` returning the output."""
        if self._workflow is None:
            raise TypeError("DurableAgent.workflow needs a name: DurableAgent(agent, name=...)")
        return self._workflow

    def _run_prompt(self, user_prompt: str) -> Any:
        return self.run_sync(user_prompt).output

    # -- the durable run ------------------------------------------------------------------------

    @contextmanager
    def _durable(self, kwargs: dict[str, Any], wait_for_approvals: bool = True) -> Iterator[None]:
        """Inside a workflow: the model and every toolset wrapped for this run, tool calls
        sequential; ``kwargs`` (the run's arguments) adjusted to match."""
        if not in_workflow():
            yield
            return
        agent = self.wrapped
        assert isinstance(agent, Agent)
        model = kwargs.pop("model", None) or agent.model
        toolsets: list[AbstractToolset[Any]] = list(agent.toolsets)
        toolsets += list(kwargs.pop("toolsets", None) or ())
        wrapped_toolsets = [DurableToolset(t, step_options=self.tool_step) for t in toolsets]
        durable_model = (
            None
            if model is None
            else DurableModel(model, step_options=self.model_step, stream_key=self.stream_key)
        )
        kwargs["event_stream_handler"] = self._handler(
            kwargs.get("event_stream_handler"), durable_model
        )
        if self.approvals and wait_for_approvals:
            kwargs["output_type"] = _with_deferred(kwargs.get("output_type") or agent.output_type)
        with ExitStack() as stack:
            if durable_model is not None:
                stack.enter_context(agent.override(model=durable_model))
            stack.enter_context(agent.override(tools=[], toolsets=wrapped_toolsets))
            stack.enter_context(Agent.parallel_tool_call_execution_mode("sequential"))
            yield

    def _handler(self, user_handler: Any, model: DurableModel | None) -> Any:
        key = self.stream_key
        if key is None:
            return user_handler

        async def handle(ctx: RunContext[Any], events: AsyncIterable[AgentStreamEvent]) -> None:
            async def written() -> AsyncIterator[AgentStreamEvent]:
                async for event in events:
                    # A model response's events were appended by its step as they arrived
                    # (DurableModel); here, on the first run as on a replay, they are the
                    # recorded response's, already in the stream.
                    live = model is not None and model.events_written
                    if not (live and isinstance(event, _MODEL_EVENTS)):
                        await write_stream_async(key, dump_event(event))
                    yield event

            stream = written()
            if user_handler is not None:
                await user_handler(ctx, stream)
            async for _ in stream:
                pass

        return handle

    def _awaiting(self, result: AgentRunResult[Any]) -> DeferredToolRequests | None:
        output = result.output
        if not (self.approvals and in_workflow() and isinstance(output, DeferredToolRequests)):
            return None
        if output.calls or not output.approvals:  # external calls: the caller's to answer
            return None
        return output

    async def run(self, user_prompt: Any = None, **kwargs: Any) -> AgentRunResult[Any]:
        """``Agent.run``, durable inside a workflow (see the class)."""
        with self._durable(kwargs):
            result = await self.wrapped.run(user_prompt, **kwargs)
            while (requests := self._awaiting(result)) is not None:
                calls = pending_calls(requests)
                await set_event_async(self.approval_topic, calls)
                if self.stream_key is not None:
                    await write_stream_async(self.stream_key, _approval_event(calls))
                decided: dict[str, bool | ToolDenied] = {}
                waiting = {c["tool_call_id"] for c in calls}
                while waiting:
                    decision = await recv_async(self.approval_topic, timeout=self.approval_timeout)
                    self._decide(decision, waiting, decided)
                await set_event_async(self.approval_topic, [])
                result = await self.wrapped.run(None, **_continue(kwargs, result, decided))
        return result

    def run_sync(self, user_prompt: Any = None, **kwargs: Any) -> AgentRunResult[Any]:
        """``Agent.run_sync``, durable inside a sync workflow: an approval wait outside the
        agent's event loop, so a long wait gives back the workflow's thread."""
        with self._durable(kwargs):
            result = self.wrapped.run_sync(user_prompt, **kwargs)
            while (requests := self._awaiting(result)) is not None:
                calls = pending_calls(requests)
                set_event(self.approval_topic, calls)
                if self.stream_key is not None:
                    write_stream(self.stream_key, _approval_event(calls))
                decided: dict[str, bool | ToolDenied] = {}
                waiting = {c["tool_call_id"] for c in calls}
                while waiting:
                    decision = recv(self.approval_topic, timeout=self.approval_timeout)
                    self._decide(decision, waiting, decided)
                set_event(self.approval_topic, [])
                result = self.wrapped.run_sync(None, **_continue(kwargs, result, decided))
        return result

    @asynccontextmanager
    async def run_stream(
        self, user_prompt: Any = None, **kwargs: Any
    ) -> AsyncIterator[StreamedRunResult[Any, Any]]:
        """``Agent.run_stream``: inside a workflow its model requests and tool calls are steps
        and the streamed output is the recorded response's events (tool approvals are not
        waited for here: use ``run``)."""
        with self._durable(kwargs, wait_for_approvals=False):
            async with self.wrapped.run_stream(user_prompt, **kwargs) as streamed:
                yield streamed

    def _decide(
        self, decision: Any, waiting: set[str], decided: dict[str, bool | ToolDenied]
    ) -> None:
        if decision is None:
            timed_out(waiting, decided, self.approval_timeout or 0)
            return
        try:
            apply_decision(decision, waiting, decided)
        except TypeError as exc:  # a malformed message must not fail the run: wait on
            log.warning("ignoring an approval message: %s", exc)


def _with_deferred(output_type: Any) -> Any:
    """The run's output type with ``DeferredToolRequests`` among its choices."""
    choices = list(output_type) if isinstance(output_type, list | tuple) else [output_type]
    if DeferredToolRequests not in choices:
        choices.append(DeferredToolRequests)
    return choices


def _continue(
    kwargs: dict[str, Any], result: AgentRunResult[Any], decided: dict[str, bool | ToolDenied]
) -> dict[str, Any]:
    """The arguments of the run that continues ``result`` with the approval decisions."""
    return {
        **kwargs,
        "message_history": result.all_messages(),
        "deferred_tool_results": DeferredToolResults(approvals=dict(decided)),
    }


def _approval_event(calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {"event_kind": "approval_required", "calls": calls}
