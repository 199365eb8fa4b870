"""Per-partition depth in the Prometheus metrics: the ``PARTITION_SERIES`` deepest
partitions (bounded labels), both backends. (The CLI view: tests/cli/test_partition_command.py.)"""

from __future__ import annotations

import uuid

import pytest

from durable_core import Client
from durable_core import metrics as m


def parse(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def backlog(database_url: str, queue: str) -> None:
    # A queue no process here serves, with a name nobody registers: it stays ENQUEUED.
    with Client(database_url) as client:
        for key, n in (("big", 5), ("mid", 2), ("one", 1)):
            for _ in range(n):
                client.enqueue(queue, "nobody.registers.this", partition_key=key)


def test_metrics_have_bounded_partition_series(engine, database_url, monkeypatch):
    pytest.importorskip("prometheus_client")
    queue = f"parts-m-{uuid.uuid4().hex[:6]}"
    backlog(database_url, queue)
    monkeypatch.setattr(m, "PARTITION_SERIES", 2)
    got = parse(m.exposition(engine.store).decode())
    series = {k: v for k, v in got.items() if k.startswith("durable_queue_partition_depth")}
    assert series == {
        f'durable_queue_partition_depth{{partition="big",queue="{queue}"}}': 5.0,
        f'durable_queue_partition_depth{{partition="mid",queue="{queue}"}}': 2.0,
    }
    age = f'durable_queue_partition_oldest_age_seconds{{partition="big",queue="{queue}"}}'
    assert got[age] >= 0
