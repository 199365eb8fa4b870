"""Waiting inside and outside workflows: a wait in this thread up to the suspend threshold,
then parking; and reading a workflow's outcome (what ``handle.result`` waits for)."""

from __future__ import annotations

import json
import time
from typing import Any

from .context import Suspend, WorkflowContext
from .errors import WorkflowCancelled, WorkflowFailed, WorkflowNotFound
from .runtime import SystemDatabase
from .serialization import Serializer, decode_error
from .status import TERMINAL


def read_outcome(owner: SystemDatabase, workflow_id: str) -> tuple | None:
    """``(status, output, error)`` once the workflow has ended, else None."""
    row = owner.store.get_outcome(workflow_id)
    if row is None:
        raise WorkflowNotFound(workflow_id)
    return row if row[0] in TERMINAL else None


def outcome_value(serializer: Serializer, workflow_id: str, outcome: tuple) -> Any:
    """The result of an ended workflow, or raise its exception."""
    status, output, error = outcome
    if status == "SUCCESS":
        return None if output is None else serializer.loads(output)
    if status == "CANCELLED":
        reason = "it timed out" if error and "TimeoutError" in error else "it was cancelled"
        raise WorkflowCancelled(workflow_id, reason)
    if status == "ERROR":
        raise decode_error(serializer, error or "{}", workflow_id)
    payload = json.loads(error) if error else {}
    raise WorkflowFailed(
        workflow_id, "MaxRecoveryAttemptsExceeded", payload.get("message", ""), status
    )


def wait_for_result(ctx: WorkflowContext, child_id: str) -> Any:
    """Wait for another workflow inside a workflow; a long wait gives back the thread."""
    engine = ctx.engine
    key = ("w", child_id)
    waiting_since = time.monotonic()
    while True:
        seen = engine.notifier.version(key)
        outcome = read_outcome(engine, child_id)
        if outcome is not None:
            return outcome_value(engine.serializer, child_id, outcome)
        ctx.check_live()
        wait_or_park(ctx, [key], [seen], float("inf"), waiting_since)


def wait_or_park(
    ctx: WorkflowContext, keys: list, seen: list, deadline: float, since: float
) -> None:
    """Wait for a wake-up signal in this thread for up to the engine's suspend threshold
    (short waits stay fast); past it, give the thread back by parking the workflow until one
    of ``keys`` is signalled or ``deadline`` (epoch seconds, may be inf) passes. Only a
    quarter of the pool may wait on-thread at once; past that a wait parks at once, so a
    burst of waits does not hold every thread for the threshold."""
    engine = ctx.engine
    remaining = deadline - engine.clock.time()
    if remaining <= 0:
        return
    budget = min(remaining, engine.poll_interval)
    if not ctx.can_suspend:
        engine.notifier.wait(keys, seen, budget)
        return
    in_thread = engine.suspend_threshold - (time.monotonic() - since)
    with engine.in_thread_wait() as allowed:
        if in_thread > 0 and allowed:
            engine.notifier.wait(keys, seen, min(budget, in_thread))
            return
    raise Suspend(None if deadline == float("inf") else deadline, tuple(keys), tuple(seen))
