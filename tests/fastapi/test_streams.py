"""Server-Sent Events of a workflow's stream, read in order."""

import json

from . import flows
from .conftest import make_app, make_durable, running


def parse_sse(body: str) -> list[tuple[str, object]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_stream_values_arrive_in_order_then_end(database_url, sync_app_engine):
    durable = make_durable(database_url, sync_app_engine)
    app = make_app(durable)
    async with running(app, durable) as client:
        handle = durable.engine.start_workflow(flows.emit, 12, workflow_id="e-1")
        async with client.stream("GET", "/durable/workflows/e-1/streams/progress") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            body = "".join([chunk async for chunk in response.aiter_text()])
        assert await handle.result_async() == 12
    events = parse_sse(body)
    assert events[-1] == ("end", None)
    assert events[:-1] == [("value", {"i": i, "square": i * i}) for i in range(12)]
    assert body.startswith("id: 1\n")


async def test_stream_of_a_finished_workflow_replays_and_ends(database_url, sync_app_engine):
    durable = make_durable(database_url, sync_app_engine)
    app = make_app(durable)
    async with running(app, durable) as client:
        await durable.engine.start_workflow(flows.greet, "q", workflow_id="g-9").result_async()
        response = await client.get("/durable/workflows/g-9/streams/nothing")
        assert parse_sse(response.text) == [("end", None)]
        bad_key = await client.get("/durable/workflows/g-9/streams/" + "k" * 1001)
        assert bad_key.status_code == 422
