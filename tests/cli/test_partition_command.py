"""``durable queues --partitions [QUEUE] [--top N]``: per-partition depth, both backends."""

from __future__ import annotations

import uuid

from tests.ops.test_partition_views import backlog


def test_queues_partitions_lists_the_deepest_first(engine, database_url, durable, durable_json):
    queue = f"parts-{uuid.uuid4().hex[:6]}"
    backlog(database_url, queue)
    rows = durable_json("queues", "--partitions", queue)
    assert [(r["partition"], r["ENQUEUED"], r["PENDING"]) for r in rows] == [
        ("big", 5, 0),
        ("mid", 2, 0),
        ("one", 1, 0),
    ]
    assert all(r["queue"] == queue and r["oldest_age_seconds"] >= 0 for r in rows)
    top = durable_json("queues", "--partitions", queue, "--top", "1")
    assert [r["partition"] for r in top] == ["big"]
    table = durable("queues", "--partitions", queue, "--top", "2")
    assert table.exit_code == 0, table.output
    assert "'big'" in table.stdout and "'mid'" in table.stdout and "'one'" not in table.stdout
    assert "--top N shows more" in table.stdout
