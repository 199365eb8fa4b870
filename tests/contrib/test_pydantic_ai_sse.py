"""A durable agent's events over the FastAPI router's SSE endpoint, in order."""

from __future__ import annotations

import pytest

pytest.importorskip("pydantic_ai")
pytest.importorskip("fastapi")

from durable_core.contrib.pydantic_ai import EVENTS_STREAM  # noqa: E402
from tests.contrib.agent_app import sync_agent  # noqa: E402
from tests.fastapi.conftest import make_app, make_durable, running, sync_app_engine  # noqa: E402, F401
from tests.fastapi.test_streams import parse_sse  # noqa: E402


async def test_agent_events_arrive_in_order_over_sse(database_url, sync_app_engine):  # noqa: F811
    durable = make_durable(database_url, sync_app_engine)
    app = make_app(durable)
    async with running(app, durable) as client:
        handle = durable.engine.start_workflow(sync_agent, "hi", workflow_id="agents-sse")
        url = f"/durable/workflows/agents-sse/streams/{EVENTS_STREAM}"
        async with client.stream("GET", url) as response:
            assert response.status_code == 200
            body = "".join([chunk async for chunk in response.aiter_text()])
        assert await handle.result_async() == '{"add":0,"shout":"A"}'
        expected = list(durable.engine.read_stream("agents-sse", EVENTS_STREAM))
    events = parse_sse(body)
    assert events[-1] == ("end", None)
    values = [value for kind, value in events[:-1]]
    assert all(kind == "value" for kind, _ in events[:-1])
    assert values == expected  # the same events, in the order they were written
    kinds = [v["event_kind"] for v in values]
    assert kinds.index("function_tool_result") < kinds.index("final_result")


async def test_the_sse_endpoint_sends_a_token_while_its_model_step_runs(
    database_url,
    sync_app_engine,  # noqa: F811
):
    import uuid

    from tests.contrib.test_pydantic_ai_live import _gate, _text, live_sync

    durable = make_durable(database_url, sync_app_engine)
    app = make_app(durable)
    wid = f"agents-live-sse-{uuid.uuid4()}"
    async with running(app, durable):
        handle = durable.engine.start_workflow(live_sync, "hi", workflow_id=wid)
        # The body the router's SSE endpoint sends, frame by frame.
        frames = durable.stream_response(wid, EVENTS_STREAM).body_iterator
        body = ""
        async for frame in frames:
            body += frame if isinstance(frame, str) else bytes(frame).decode()
            if any(kind == "value" for kind, _ in parse_sse(body)):
                break
        [(kind, first)] = parse_sse(body)
        assert isinstance(first, dict) and first["event_kind"] == "part_start"
        assert first["part"]["content"] == "Hello "
        assert durable.engine.list_steps(wid) == []  # sent while the model step waits
        _gate(wid).set()
        async for frame in frames:
            body += frame if isinstance(frame, str) else bytes(frame).decode()
        assert await handle.result_async() == "Hello world"
    events = parse_sse(body)
    assert events[-1] == ("end", None)
    values = [value for kind, value in events[:-1] if kind == "value"]
    assert _text(values) == "Hello world"  # type: ignore[arg-type]
