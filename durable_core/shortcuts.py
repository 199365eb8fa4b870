"""The module-level calls that act on the current engine (the running workflow's, else the
default one): ``start_workflow``, ``start_workflow_async``, ``retrieve_workflow``."""

from __future__ import annotations

import asyncio
from typing import Any

from .context import engine_for_call
from .handles import WorkflowHandle


def start_workflow(
    fn: Any, *args: Any, workflow_id: str | None = None, timeout: float | None = None, **kwargs: Any
) -> WorkflowHandle:
    """Start ``fn`` in the background; inside a workflow, as a child of it."""
    handle: WorkflowHandle = engine_for_call().start_workflow(
        fn, *args, workflow_id=workflow_id, timeout=timeout, **kwargs
    )
    return handle


async def start_workflow_async(
    fn: Any, *args: Any, workflow_id: str | None = None, timeout: float | None = None, **kwargs: Any
) -> WorkflowHandle:
    return await asyncio.to_thread(
        start_workflow, fn, *args, workflow_id=workflow_id, timeout=timeout, **kwargs
    )


def retrieve_workflow(workflow_id: str) -> WorkflowHandle:
    """A handle to an existing workflow on the current engine."""
    handle: WorkflowHandle = engine_for_call().retrieve_workflow(workflow_id)
    return handle
