"""Server-Sent Events over a workflow's stream (``read_stream``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from ._models import _jsonable


def _event(name: str, data: Any, event_id: int | None = None) -> str:
    lines = [] if event_id is None else [f"id: {event_id}"]
    lines.append(f"event: {name}")
    lines.extend(f"data: {line}" for line in json.dumps(_jsonable(data)).splitlines() or [""])
    return "\n".join(lines) + "\n\n"


async def sse_events(engine: Any, workflow_id: str, key: str) -> AsyncIterator[str]:
    """``value`` events in stream order, then one ``end`` event when the stream closes or the
    workflow ends."""
    index = 0
    async for value in engine.read_stream(workflow_id, key):
        index += 1
        yield _event("value", value, index)
    yield _event("end", None)


def stream_response(engine: Any, workflow_id: str, key: str) -> StreamingResponse:
    """A ``text/event-stream`` response; raise ``WorkflowNotFound`` first if the ID is unknown
    (``engine.retrieve_workflow``), since headers are sent before the first value."""
    return StreamingResponse(
        sse_events(engine, workflow_id, key),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
