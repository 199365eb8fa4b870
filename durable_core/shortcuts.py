"""The module-level calls that act on the current engine (the running workflow's, else the
default one): ``start_workflow``, ``start_workflow_async``, ``retrieve_workflow``."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Coroutine
from typing import Any, TypeVar, overload

from .context import engine_for_call
from .handles import WorkflowHandle
from .registry import Workflow

R = TypeVar("R")


@overload
def start_workflow(
    fn: Workflow[..., Coroutine[Any, Any, R]],
    *args: Any,
    workflow_id: str | None = None,
    timeout: float | None = None,
    **kwargs: Any,
) -> WorkflowHandle[R]: ...


@overload
def start_workflow(
    fn: Workflow[..., R],
    *args: Any,
    workflow_id: str | None = None,
    timeout: float | None = None,
    **kwargs: Any,
) -> WorkflowHandle[R]: ...


@overload
def start_workflow(
    fn: str, *args: Any, workflow_id: str | None = None, timeout: float | None = None, **kwargs: Any
) -> WorkflowHandle[Any]: ...


def start_workflow(
    fn: Any, *args: Any, workflow_id: str | None = None, timeout: float | None = None, **kwargs: Any
) -> WorkflowHandle[Any]:
    """Start ``fn`` in the background; inside a workflow, as a child of it."""
    handle: WorkflowHandle[Any] = engine_for_call().start_workflow(
        fn, *args, workflow_id=workflow_id, timeout=timeout, **kwargs
    )
    return handle


@overload
async def start_workflow_async(
    fn: Workflow[..., Coroutine[Any, Any, R]],
    *args: Any,
    workflow_id: str | None = None,
    timeout: float | None = None,
    **kwargs: Any,
) -> WorkflowHandle[R]: ...


@overload
async def start_workflow_async(
    fn: Workflow[..., R],
    *args: Any,
    workflow_id: str | None = None,
    timeout: float | None = None,
    **kwargs: Any,
) -> WorkflowHandle[R]: ...


@overload
async def start_workflow_async(
    fn: str, *args: Any, workflow_id: str | None = None, timeout: float | None = None, **kwargs: Any
) -> WorkflowHandle[Any]: ...


async def start_workflow_async(
    fn: Any, *args: Any, workflow_id: str | None = None, timeout: float | None = None, **kwargs: Any
) -> WorkflowHandle[Any]:
    start = functools.partial(
        start_workflow, fn, *args, workflow_id=workflow_id, timeout=timeout, **kwargs
    )
    return await asyncio.to_thread(start)


def retrieve_workflow(workflow_id: str) -> WorkflowHandle[Any]:
    """A handle to an existing workflow on the current engine."""
    handle: WorkflowHandle[Any] = engine_for_call().retrieve_workflow(workflow_id)
    return handle
