"""What a user's editor and type checker see: checked by mypy (CI runs ``mypy
tests/typing``; tests/typing/test_types.py runs it too). Not executed."""

from __future__ import annotations

from typing import Any, assert_type

from durable_core import (
    Client,
    Engine,
    Queue,
    Workflow,
    WorkflowHandle,
    retrieve_workflow,
    start_workflow,
    start_workflow_async,
    step,
    transaction,
    workflow,
)


@step
def add(x: int, y: int = 1) -> int:
    return x + y


@step(retries=3)
async def fetch(url: str) -> bytes:
    return url.encode()


@transaction
def charge(order_id: str, cents: int) -> bool:
    return cents > 0


@workflow
def checkout(order_id: str, cents: int) -> str:
    return order_id if charge(order_id, cents) else ""


@workflow(name="crawl", max_recovery_attempts=3)
async def crawl(url: str) -> int:
    return len(await fetch(url))


def check(engine: Engine, queue: Queue, client: Client) -> None:
    # Steps keep the function's signature.
    assert_type(add(1), int)
    assert_type(add(1, y=2), int)
    assert_type(charge("o-1", 100), bool)
    # Workflows are Workflow[P, R]: called directly they return R.
    as_declared: Workflow[[str, int], str] = checkout
    assert_type(as_declared("o-1", 100), str)
    assert_type(checkout("o-1", 100), str)
    # Handles carry the result type (the awaited result for async workflows).
    handle = engine.start_workflow(checkout, "o-1", 100, workflow_id="o-1")
    assert_type(handle, WorkflowHandle[str])
    assert_type(handle.result(timeout=5), str)
    assert_type(engine.start_workflow(crawl, "https://example.org"), WorkflowHandle[int])
    assert_type(start_workflow(checkout, "o-2", 1), WorkflowHandle[str])
    assert_type(queue.enqueue(crawl, "https://example.org", priority=1), WorkflowHandle[int])
    assert_type(engine.start_workflow("by.name"), WorkflowHandle[Any])
    assert_type(retrieve_workflow("o-1"), WorkflowHandle[Any])
    assert_type(client.enqueue("q", "crawl", "u"), WorkflowHandle[Any])


async def check_async(engine: Engine, queue: Queue) -> None:
    assert_type(await fetch("u"), bytes)
    handle = await engine.start_workflow_async(crawl, "u")
    assert_type(handle, WorkflowHandle[int])
    assert_type(await handle.result_async(), int)
    assert_type(await start_workflow_async(checkout, "o", 1), WorkflowHandle[str])
    assert_type(await queue.enqueue_async(checkout, "o", 1), WorkflowHandle[str])
    assert_type(await crawl("u"), int)
