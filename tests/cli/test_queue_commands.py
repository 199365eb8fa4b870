"""``durable queues [list|pause|resume|set|reset]`` and ``durable executors``, both backends."""

from __future__ import annotations

import uuid

from durable_core import Client

from .conftest import assert_clean_failure


def _enqueue(database_url: str, queue: str, n: int) -> None:
    with Client(database_url) as client:
        for _ in range(n):
            client.enqueue(queue, "tests.cli.flows.three_steps", "x", 1)


def test_queues_pause_set_reset_resume(engine, database_url, durable, durable_json):
    queue = f"cli-q-{uuid.uuid4().hex[:6]}"
    _enqueue(database_url, queue, 2)  # a queue no process declares: it stays ENQUEUED

    (paused,) = durable_json("queues", "pause", queue)
    assert paused["name"] == queue and paused["paused"] is True and paused["enqueued"] == 2
    assert engine.get_queue(queue).paused

    (limited,) = durable_json(
        "queues", "set", queue, "--concurrency", "3", "--rate-limit", "10/1", "--worker-concurrency", "none"
    )  # fmt: skip
    assert (limited["concurrency"], limited["rate_limit"]) == (3, [10, 1.0])
    assert set(limited["overridden"]) == {"concurrency", "rate_limit", "worker_concurrency"}
    assert engine.get_queue(queue).rate_limit == (10, 1.0)

    table = durable("queues")
    assert table.exit_code == 0, table.output
    line = next(row for row in table.stdout.splitlines() if queue in row)
    assert "paused" in line and "10/1s" in line and "3" in line

    listed = {q["queue"]: q for q in durable_json("queues", "list")}
    assert listed[queue]["ENQUEUED"] == 2 and listed[queue]["PENDING"] == 0

    (reset,) = durable_json("queues", "reset", queue)
    assert reset["overridden"] == [] and reset["concurrency"] is None and reset["paused"]
    (resumed,) = durable_json("queues", "resume", queue)
    assert resumed["paused"] is False
    assert not engine.get_queue(queue).paused


def test_queues_set_refuses_bad_limits(engine, durable):
    assert_clean_failure(durable("queues", "set", "q", "--concurrency", "0"), "concurrency")
    bad_rate = durable("queues", "set", "q", "--rate-limit", "ten")
    assert bad_rate.exit_code == 2 and "N/SECONDS" in bad_rate.output
    nothing = durable("queues", "set", "q")
    assert nothing.exit_code == 2 and "--concurrency" in nothing.output
    assert engine.get_queue("q").overridden == ()


def test_executors_live_and_dead(engine, durable, durable_json):
    engine.store.heartbeat("cli-dead", "v0", "gone-host", 4242, 10_000)
    engine.store.run(
        "UPDATE durable_executors SET heartbeat_at = %s WHERE executor_id = %s",
        (engine.store.now_ms() - 600_000, "cli-dead"),
    )
    rows = {e["executor_id"]: e for e in durable_json("executors")}
    assert rows[engine.executor_id]["live"] is True
    assert rows[engine.executor_id]["application_version"] == engine.application_version
    assert rows["cli-dead"]["live"] is False and rows["cli-dead"]["hostname"] == "gone-host"
    live = {e["executor_id"] for e in durable_json("executors", "--live")}
    assert engine.executor_id in live and "cli-dead" not in live
    table = durable("executors")
    assert table.exit_code == 0, table.output
    assert "cli-dead" in table.stdout and "dead" in table.stdout and "live" in table.stdout
