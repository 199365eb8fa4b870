"""The model wrapper: each model request is one step named ``model:<model name>``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import (
    CompletedStreamedResponse,
    Model,
    ModelRequestParameters,
    StreamedResponse,
)
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext

from durable_core import step

from ._codec import dump_response, dump_stream_events, load_response, load_stream_events
from ._context import in_workflow


class DurableModel(WrapperModel):
    """Runs ``request`` and ``request_stream`` of the wrapped model as checkpointed steps.

    A streamed request drains the provider's stream inside the step and records its events with
    the response; the workflow side gets a completed response that replays those events, so an
    event stream handler sees the same events on the first run and on every replay."""

    def __init__(self, wrapped: Model | str, *, step_options: Mapping[str, Any] | None = None):
        super().__init__(wrapped)
        self.step_options = dict(step_options or {})

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

        async def stream_body() -> dict[str, Any]:
            async with self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as streamed:
                events = [event async for event in streamed]
                response = streamed.get()
            return {"response": dump_response(response), "events": dump_stream_events(events)}

        recorded = await self._step(stream_body)()
        yield CompletedStreamedResponse(
            load_response(recorded["response"]),
            model_request_parameters=model_request_parameters,
            replay_events=load_stream_events(recorded["events"]),
        )
