"""Django tasks run by the durable task backend."""

from __future__ import annotations

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task


@task()
def multiply(a: int, b: int) -> int:
    return a * b


@task(priority=10)
def urgent(x: int) -> int:
    return x


@task()
def explode() -> None:
    raise ValueError("task exploded")


@task(takes_context=True)
def with_context(context, x: int) -> str:
    return f"{context.task_result.id}:{x}"


@task()
def pair(a, b):
    return (a, b)


@task()
def returns_a_set() -> object:
    return {1, 2}


@task()
def exits() -> None:
    import sys

    sys.exit(3)


@task()
async def async_add(a: int, b: int) -> int:
    return a + b


@task()
def chained() -> None:
    try:
        raise KeyError("inner")
    except KeyError as exc:
        raise RuntimeError("outer") from exc


@task(takes_context=True)
def attempt_number(context) -> int:
    return context.attempt


@task()
def raises_unimportable() -> None:
    # An exception whose module the reading process cannot import.
    error = type("FarAwayError", (Exception,), {"__module__": "somewhere.not_installed"})
    raise error("from far away")


@task(takes_context=True, queue_name="crashy")
def slow_first_attempt(context, seconds: float) -> int:
    import time

    if context.attempt == 1:
        time.sleep(seconds)
    return context.attempt


# A partitioned durable queue for tasks: declared before any task names it, so the task
# backend uses this declaration (a key per enqueue, through ``enqueue_options``).
from durable_core import Queue  # noqa: E402

tenant_queue = Queue("tenants", partitioned=True, partition_concurrency=1)


@task(queue_name="tenants")
def per_tenant(tenant: str, n: int) -> str:
    return f"{tenant}:{n}"
