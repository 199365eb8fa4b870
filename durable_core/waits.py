"""A workflow's outcome: reading it, and the one plan that waits for it (``handle.result``,
``result_async`` and a parent waiting for its child all run it)."""

from __future__ import annotations

import json
import time
from typing import Any

from .context import WorkflowContext
from .drivers import INF, Call, Plan, Wait, run_sync, signal_wait
from .errors import WaitInTransaction, WorkflowCancelled, WorkflowFailed, WorkflowNotFound
from .runtime import SystemDatabase
from .serialization import Serializer, decode_error
from .status import TERMINAL


def read_outcome(owner: SystemDatabase, workflow_id: str) -> tuple[Any, ...] | None:
    """``(status, output, error)`` once the workflow has ended, else None."""
    row = owner.store.get_outcome(workflow_id)
    if row is None:
        raise WorkflowNotFound(workflow_id)
    return row if row[0] in TERMINAL else None


def refuse_wait_in_transaction(owner: SystemDatabase, workflow_id: str) -> None:
    """``WaitInTransaction`` for a wait inside the caller's open transaction (Django's
    ``atomic()``) on a workflow that cannot end before it: started in that transaction (not
    committed, so no worker can see it), or unfinished on SQLite (the transaction holds the
    file's write lock). A workflow that has ended, or (on PostgreSQL) one committed before,
    is waited for as anywhere else."""
    conn, _ = owner.callers_transaction()
    if conn is None:
        return
    with owner.store.joining(conn):
        seen = owner.store.get_outcome(workflow_id)
    if seen is None:
        raise WorkflowNotFound(workflow_id)
    if seen[0] in TERMINAL:
        return
    if owner.store.get_outcome(workflow_id) is None:  # through the engine's own connection
        raise WaitInTransaction(
            workflow_id,
            "it was started (or enqueued) in this transaction, so it runs only once the "
            "transaction commits.",
        )
    if owner.store.dialect == "sqlite":
        raise WaitInTransaction(
            workflow_id,
            "on SQLite this transaction holds the database's write lock, which the workflow "
            "needs to make progress.",
        )


def outcome_value(serializer: Serializer, workflow_id: str, outcome: tuple[Any, ...]) -> Any:
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


def outcome_plan(
    owner: SystemDatabase,
    workflow_id: str,
    timeout: float | None = None,
    ctx: WorkflowContext | None = None,
) -> Plan[Any]:
    """Wait for workflow ``workflow_id`` to end and return its result (or raise its error).

    With ``ctx`` (waiting inside a sync workflow, no timeout) the wait stops at cancellation
    and a long one gives back the thread; otherwise ``TimeoutError`` after ``timeout``."""
    key = ("w", workflow_id)
    since = time.monotonic()
    deadline = None if timeout is None else since + timeout
    while True:
        seen = owner.notifier.version(key)
        outcome = yield Call(read_outcome, (owner, workflow_id))
        if outcome is not None:
            return outcome_value(owner.serializer, workflow_id, outcome)
        if ctx is not None:
            ctx.check_live()
            wait = signal_wait(ctx, [key], [seen], INF, since)
            if wait is not None:
                yield wait
            continue
        budget = owner.poll_interval
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"workflow {workflow_id!r} did not finish within {timeout}s")
            budget = min(budget, remaining)
        yield Wait(owner.notifier, (key,), (seen,), budget)


def wait_for_result(ctx: WorkflowContext, child_id: str) -> Any:
    """Wait for another workflow inside a sync workflow; a long wait gives back the thread."""
    return run_sync(outcome_plan(ctx.engine, child_id, None, ctx))
