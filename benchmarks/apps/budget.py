"""The workload of ``benchmarks.connections``: a queue of three-step workflows."""

from __future__ import annotations

from durable_core import Queue, step, workflow

budget_queue = Queue("budget")


@step
def budget_step(i: int) -> int:
    return i + 1


@workflow(name="budget_three")
def budget_three(i: int) -> int:
    return budget_step(budget_step(budget_step(i)))
