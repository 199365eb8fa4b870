"""The scrape's queue gauges: paused queues, and the depth and age read through the store's
own backlog query (metrics.py holds no SQL of its own). SQLite and PostgreSQL."""

from __future__ import annotations

import inspect
import re
import uuid

import pytest

from durable_core import Client, Queue
from durable_core import metrics as m
from tests.ops.test_metrics import scrape

pytest.importorskip("prometheus_client")

RUN = uuid.uuid4().hex[:8]
held = Queue(f"metrics-held-{RUN}")


def test_a_paused_queue_shows_in_the_paused_gauge(engine):
    key = f'durable_queue_paused{{queue="{held.name}"}}'
    assert scrape(engine)[key] == 0  # declared (its launch published it), not paused
    engine.pause_queue(held.name)
    assert scrape(engine)[key] == 1
    engine.resume_queue(held.name)
    assert scrape(engine)[key] == 0


def test_depth_counts_enqueued_and_age_starts_when_claimable(engine, database_url):
    idle = f"metrics-idle2-{RUN}"
    with Client(database_url) as client:
        client.enqueue(idle, f"unknown-{RUN}")
        client.enqueue(idle, f"unknown-{RUN}", delay=3600)
        delayed_only = f"metrics-later-{RUN}"
        client.enqueue(delayed_only, f"unknown-{RUN}", delay=3600)
    after = scrape(engine)
    assert after[f'durable_queue_depth{{queue="{idle}"}}'] == 2
    assert 0 <= after[f'durable_queue_oldest_age_seconds{{queue="{idle}"}}'] < 60
    assert after[f'durable_queue_depth{{queue="{delayed_only}"}}'] == 1
    assert after[f'durable_queue_oldest_age_seconds{{queue="{delayed_only}"}}'] == 0


def test_the_collector_reads_through_store_methods_only():
    source = inspect.getsource(m)
    assert not re.search(r"\b(SELECT|FROM|WHERE)\b", source.replace("SELECT 1", ""))
