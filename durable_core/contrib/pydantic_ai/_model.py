"""The model wrapper: each model request is one step named ``model:<model name>``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse, ModelResponseStreamEvent
from pydantic_ai.models import (
    CompletedStreamedResponse,
    Model,
    ModelRequestParameters,
    StreamedResponse,
)
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext

from durable_core import step, step_attempt, step_id, write_stream_async

from ._codec import (
    dump_event,
    dump_response,
    dump_stream_events,
    load_response,
    load_stream_events,
)
from ._context import in_workflow


class DurableModel(WrapperModel):
    """Runs ``request`` and ``request_stream`` of the wrapped model as checkpointed steps.

    A streamed request drains the provider's stream inside the step and records its events with
    the response; the workflow side gets a completed response that replays those events, so an
    event stream handler sees the same events on the first run and on every replay.

    With a ``stream_key``, the step also appends each event to that stream as the provider
    delivers it (``write_stream`` from the step's body: written at once, not replayed), so
    readers see the tokens while the request runs. Each such value carries
    ``"durable": {"step_id", "attempt"}``: an attempt that did not finish (a crash, a retry)
    leaves its events in the stream, and the next attempt of the same step starts again with a
    ``part_start`` of index 0."""

    def __init__(
        self,
        wrapped: Model | str,
        *,
        step_options: Mapping[str, Any] | None = None,
        stream_key: str | None = None,
    ):
        super().__init__(wrapped)
        self.step_options = dict(step_options or {})
        self.stream_key = stream_key
        #: Whether the last streamed response's events are in the stream already: written live
        #: by its step. False for a response recorded before live tokens existed, whose events
        #: the agent's handler writes (as checkpoints) the way it did then.
        self.events_written = False

    @property
    def step_name(self) -> str:
        return f"model:{self.wrapped.model_name}"

    def _step(self, body: Any) -> Any:
        return step(name=self.step_name, **self.step_options)(body)

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        if not in_workflow():
            return await self.wrapped.request(messages, model_settings, model_request_parameters)

        async def request_body() -> dict[str, Any]:
            response = await self.wrapped.request(
                messages, model_settings, model_request_parameters
            )
            return dump_response(response)

        return load_response(await self._step(request_body)())

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        if not in_workflow():
            async with self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as streamed:
                yield streamed
            return

        key = self.stream_key

        async def stream_body() -> dict[str, Any]:
            events: list[ModelResponseStreamEvent] = []
            async with self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as streamed:
                async for event in streamed:
                    events.append(event)
                    if key is not None:
                        await write_stream_async(key, live_event(event))
                response = streamed.get()
            return {
                "response": dump_response(response),
                "events": dump_stream_events(events),
                "live": key is not None,
            }

        recorded = await self._step(stream_body)()
        self.events_written = bool(recorded.get("live"))
        yield CompletedStreamedResponse(
            load_response(recorded["response"]),
            model_request_parameters=model_request_parameters,
            replay_events=load_stream_events(recorded["events"]),
        )


def live_event(event: ModelResponseStreamEvent) -> dict[str, Any]:
    """An event appended from the model step: the agent event's JSON and the attempt that wrote
    it, which is what tells a reader a crashed or retried attempt's events from the next's."""
    return {**dump_event(event), "durable": {"step_id": step_id(), "attempt": step_attempt()}}
