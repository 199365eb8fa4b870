"""Server-Sent Events over a workflow's stream (``read_stream``).

Each value is an ``id:``-numbered ``value`` event (the id is the value's position in the
stream), so a client that reconnects with ``Last-Event-ID`` continues after what it has seen.
The stream starts with a ``retry:`` hint, sends comment keep-alives while nothing happens (a
proxy's idle timeout must not cut a stream that waits days for an approval), ends with one
``end`` event when the stream closes or the workflow ends, and is closed early (without
``end``) when the app shuts down: the browser then reconnects, to another process if need be.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from ._models import _jsonable
from ._shutdown import ShutdownSignal

RETRY_MS = 3000
KEEPALIVE_SECONDS = 15.0


def _event(name: str, data: Any, event_id: int | None = None) -> str:
    lines = [] if event_id is None else [f"id: {event_id}"]
    lines.append(f"event: {name}")
    lines.extend(f"data: {line}" for line in json.dumps(_jsonable(data)).splitlines() or [""])
    return "\n".join(lines) + "\n\n"


def parse_last_event_id(header: str | None) -> int:
    """The position to continue after; a missing or foreign ``Last-Event-ID`` starts over."""
    if header is None:
        return 0
    header = header.strip()
    return int(header) if header.isdigit() else 0


async def sse_events(
    engine: Any,
    workflow_id: str,
    key: str,
    *,
    after: int = 0,
    shutdown: ShutdownSignal | None = None,
    keepalive: float = KEEPALIVE_SECONDS,
) -> AsyncIterator[str]:
    """The SSE text of stream ``key``: values after position ``after``, keep-alives, ``end``;
    cut short (without ``end``) when ``shutdown`` is set."""
    yield f"retry: {RETRY_MS}\n\n"
    values = engine.read_stream(workflow_id, key, after=after).__aiter__()
    position = after
    stopping = asyncio.ensure_future(
        shutdown.wait() if shutdown is not None else asyncio.Event().wait()
    )
    try:
        while True:
            following = asyncio.ensure_future(values.__anext__())
            while True:
                done, _ = await asyncio.wait(
                    {following, stopping}, timeout=keepalive, return_when=asyncio.FIRST_COMPLETED
                )
                if following in done:
                    break
                if stopping in done:
                    following.cancel()
                    with contextlib.suppress(BaseException):
                        await following
                    return
                yield ": keep-alive\n\n"
            try:
                value = following.result()
            except StopAsyncIteration:
                yield _event("end", None)
                return
            position += 1
            yield _event("value", value, position)
    finally:
        stopping.cancel()
        with contextlib.suppress(BaseException):
            await values.aclose()


def stream_response(
    engine: Any,
    workflow_id: str,
    key: str,
    *,
    after: int = 0,
    shutdown: ShutdownSignal | None = None,
    keepalive: float = KEEPALIVE_SECONDS,
) -> StreamingResponse:
    """A ``text/event-stream`` response; raise ``WorkflowNotFound`` first if the ID is unknown
    (``engine.retrieve_workflow``), since headers are sent before the first value."""
    return StreamingResponse(
        sse_events(engine, workflow_id, key, after=after, shutdown=shutdown, keepalive=keepalive),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
