"""Server-Sent Events of a workflow's stream, read in order."""

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

from . import flows
from .conftest import ADMIN_TOKEN, make_app, make_durable, running


def parse_sse(body: str) -> list[tuple[str, object]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        if "event" in fields:  # the leading `retry:` hint and keep-alives carry none
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
    assert body.startswith("retry: 3000\n\nid: 1\n")


async def test_stream_of_a_finished_workflow_replays_and_ends(database_url, sync_app_engine):
    durable = make_durable(database_url, sync_app_engine)
    app = make_app(durable)
    async with running(app, durable) as client:
        await durable.engine.start_workflow(flows.greet, "q", workflow_id="g-9").result_async()
        response = await client.get("/durable/workflows/g-9/streams/nothing")
        assert parse_sse(response.text) == [("end", None)]
        bad_key = await client.get("/durable/workflows/g-9/streams/" + "k" * 1001)
        assert bad_key.status_code == 422


def sse_blocks(body: str) -> list[dict[str, str]]:
    blocks = []
    for block in body.strip().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            fields[name] = value
        blocks.append(fields)
    return blocks


@contextlib.contextmanager
def serving(app: Any) -> Iterator[tuple[str, Any]]:
    """The app under a real uvicorn server in a thread (httpx's in-process transport buffers
    whole responses, so it cannot show a stream that is still open)."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(30)


def test_reconnect_with_last_event_id_continues_after_it(database_url, sync_app_engine):
    durable = make_durable(database_url, sync_app_engine)
    app = make_app(durable)
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with serving(app) as (base, _):
        handle = durable.engine.start_workflow(flows.emit_in_two_parts, 3, 2, workflow_id="r-1")
        path = base + "/durable/workflows/r-1/streams/progress"
        seen: list[str] = []
        with httpx.Client(timeout=30, headers=auth) as client:
            with client.stream("GET", path) as response:
                for line in response.iter_lines():
                    if line.startswith("id: "):
                        seen.append(line[4:])
                    if len(seen) == 3:
                        break  # the client drops the connection mid-stream
            assert seen == ["1", "2", "3"]
            durable.engine.send("r-1", "go", topic="more")
            assert handle.result(timeout=30) == 5

            again = client.get(path, headers={"Last-Event-ID": "3"})
            blocks = sse_blocks(again.text)
            assert blocks[0] == {"retry": "3000"}
            values = [(b["id"], json.loads(b["data"])) for b in blocks if b.get("event") == "value"]
            assert values == [("4", {"i": 3, "square": 9}), ("5", {"i": 4, "square": 16})]
            assert blocks[-1]["event"] == "end"

            # A foreign or garbled Last-Event-ID starts from the beginning, it does not fail.
            whole = client.get(path, headers={"Last-Event-ID": "abc"})
            ids = [b["id"] for b in sse_blocks(whole.text) if b.get("event") == "value"]
            assert ids == ["1", "2", "3", "4", "5"]


def test_idle_stream_sends_keep_alives_and_ends_at_shutdown(database_url, sync_app_engine):
    """A stream waiting on a quiet workflow keeps the connection alive with comments, and the
    app's shutdown ends it (no `end` event: the client reconnects) instead of waiting for it."""
    from fastapi_durable import Durable

    durable = Durable(
        database_url=database_url,
        app_engine=sync_app_engine,
        suspend_threshold=0.5,
        shutdown_timeout=5,
        sse_keepalive=0.2,
    )
    app = make_app(durable)
    received: list[str] = []
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with serving(app) as (base, server):
        durable.engine.start_workflow(flows.emit_in_two_parts, 0, 0, workflow_id="q-1")
        path = base + "/durable/workflows/q-1/streams/progress"
        with httpx.Client(timeout=30, headers=auth) as client:
            with client.stream("GET", path) as response:
                for line in response.iter_lines():
                    received.append(line)
                    if received.count(": keep-alive") == 2:
                        # What SIGTERM does first (the lifespan chains the server's handler):
                        # the open stream ends, so the server's graceful wait does not hang.
                        durable.shutdown_signal.set_threadsafe()
                        server.should_exit = True
                ended = time.monotonic()
    assert received[0] == "retry: 3000"
    assert "event: end" not in received
    assert time.monotonic() - ended < 25
