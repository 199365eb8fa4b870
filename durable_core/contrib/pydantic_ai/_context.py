"""Whether this code runs in a workflow, from durable_core's public API."""

from __future__ import annotations

from durable_core import workflow_id
from durable_core.errors import NotInWorkflow


def in_workflow() -> bool:
    try:
        workflow_id()
    except NotInWorkflow:
        return False
    return True
