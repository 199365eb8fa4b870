"""Pydantic AI values as JSON for checkpoints and streams, through Pydantic AI's own schemas, so a
replayed model response or stream event is the same value the first run saw."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from pydantic_ai.messages import (
    AgentStreamEvent,
    ModelMessagesTypeAdapter,
    ModelResponse,
    ModelResponseStreamEvent,
)

_stream_events: TypeAdapter[list[ModelResponseStreamEvent]] = TypeAdapter(
    list[ModelResponseStreamEvent]
)
_agent_event: TypeAdapter[AgentStreamEvent] = TypeAdapter(AgentStreamEvent)


def dump_response(response: ModelResponse) -> dict[str, Any]:
    data: dict[str, Any] = ModelMessagesTypeAdapter.dump_python([response], mode="json")[0]
    return data


def load_response(data: dict[str, Any]) -> ModelResponse:
    message = ModelMessagesTypeAdapter.validate_python([data])[0]
    if not isinstance(message, ModelResponse):
        raise TypeError(f"a recorded model step holds a {type(message).__name__}, not a response")
    return message


def dump_stream_events(events: list[ModelResponseStreamEvent]) -> list[Any]:
    data: list[Any] = _stream_events.dump_python(events, mode="json")
    return data


def load_stream_events(data: list[Any]) -> list[ModelResponseStreamEvent]:
    return _stream_events.validate_python(data)


def dump_event(event: AgentStreamEvent) -> dict[str, Any]:
    """An agent event as the JSON a stream reader (or an SSE client) gets."""
    data: dict[str, Any] = _agent_event.dump_python(event, mode="json")
    return data
