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
