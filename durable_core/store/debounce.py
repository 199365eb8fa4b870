"""Debounced enqueues: repeated enqueues with one key coalesce into one run.

``enqueue(..., debounce_key=k, debounce=s)`` stores the workflow ENQUEUED and delayed by ``s``
seconds. Another such enqueue on the same queue while it is still ENQUEUED does not add a
workflow: it gives the waiting one its arguments (the latest win) and restarts its timer, ``s``
from now, but never past ``debounce_max_wait`` after the first enqueue (the row's
``created_at``), so a steady stream of enqueues cannot postpone the run forever.

It is one statement: an upsert on the unique index of ENQUEUED rows by (queue, debounce key)
(schema version 12). The index admits one waiting row per key, so enqueuers racing in
separate transactions, processes or hosts end with one workflow: on PostgreSQL the loser of
the race waits for the winner's commit and updates its row; SQLite has one writer. Once a
worker claims the row (PENDING) the index no longer holds it, and the next enqueue with the
key starts a new debounce: a run that has begun is not changed under it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from .base import SQLStore, WorkflowRow


def enqueue(
    store: SQLStore, row: WorkflowRow, max_wait_ms: int | None, conn: Any, columns: str
) -> tuple[str, bool]:
    """Store ``row`` (ENQUEUED, ``debounce_key`` set, ``not_before`` its first due time) or
    coalesce it into the waiting row of its key. Returns the ID of the one workflow and
    whether this call created it. ``columns`` are the store's ``WORKFLOW_COLUMNS`` (the
    order of ``row.values()``), passed in so that this module does not import ``base``."""
    least = "LEAST" if store.dialect == "postgresql" else "MIN"
    due = "excluded.not_before"
    params: list[Any] = list(row.values())
    placeholders = ", ".join(["%s"] * len(params))
    if max_wait_ms is not None:
        due = f"{least}(excluded.not_before, durable_workflows.created_at + %s)"
        params.append(max_wait_ms)
    sql = (
        f"INSERT INTO durable_workflows ({columns}) VALUES ({placeholders}) "
        "ON CONFLICT (queue_name, debounce_key) "
        "WHERE debounce_key IS NOT NULL AND status = 'ENQUEUED' DO UPDATE SET "
        "inputs = excluded.inputs, trace_context = excluded.trace_context, "
        f"not_before = {due}, updated_at = excluded.updated_at "
        "WHERE durable_workflows.name = excluded.name "
        "RETURNING workflow_id"
    )
    found = store.execute(conn, sql, params).fetchall()
    if not found:
        raise ConfigurationError(
            f"debounce_key {row.debounce_key!r} on queue {row.queue_name!r} is held by a "
            f"waiting workflow of another name than {row.name!r}"
        )
    workflow_id: str = found[0][0]
    return workflow_id, workflow_id == row.workflow_id
