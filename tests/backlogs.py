"""A backlog written by one engine and drained by another, as the queue-path tests need it: the
producer (a web process: no queues, no scheduler) enqueues and shuts down; the worker serves
the queue with 16 threads."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from durable_core import Engine, Queue, set_default_engine


def enqueue_backlog(
    database_url: str,
    queue: Queue,
    batches: Sequence[tuple[Callable[..., Any], Sequence[tuple[Any, ...]]]],
    paused: bool = False,
) -> list[Any]:
    """Enqueue each (workflow, argument tuples) batch with ``enqueue_many`` from a producer
    engine; ``paused`` leaves the queue paused (resume it once the worker is watched)."""
    producer = Engine(
        database_url, executor_id=f"producer-{uuid.uuid4().hex[:6]}", queues=[], run_scheduler=False
    )
    producer.launch()
    handles: list[Any] = []
    try:
        set_default_engine(producer)
        if paused:
            producer.pause_queue(queue.name)
        for fn, args in batches:
            handles += queue.enqueue_many(fn, list(args))
    finally:
        set_default_engine(None)
        producer.shutdown(timeout=5)
    return handles


def backlog_worker(database_url: str, queue: Queue, max_workers: int = 16) -> Engine:
    """A worker engine (not launched yet) serving ``queue`` alone."""
    return Engine(
        database_url,
        executor_id=f"worker-{uuid.uuid4().hex[:6]}",
        queues=[queue.name],
        max_workers=max_workers,
        run_scheduler=False,
    )
