"""durable_core: durable workflows and steps, checkpointed in SQLite or PostgreSQL."""

from .client import Client
from .context import cancelled, step_attempt, step_id, workflow_id
from .decorators import scheduled, step, transaction, workflow
from .engine import Engine, get_default_engine, set_default_engine
from .fleet import ExecutorInfo, QueueInfo, QueueLimits
from .handles import StepInfo, WorkflowHandle, WorkflowStatus
from .messaging import (
    close_stream,
    close_stream_async,
    get_event,
    get_event_async,
    read_stream,
    recv,
    recv_async,
    send,
    send_async,
    set_event,
    set_event_async,
    sleep,
    sleep_async,
    write_stream,
    write_stream_async,
)
from .queues import Queue
from .registry import Workflow
from .schedules import Schedule
from .shortcuts import retrieve_workflow, start_workflow, start_workflow_async
from .status import Status
from .transactions import sql_session
from .versioning import deprecate_patch, patched

__all__ = [
    "workflow",
    "step",
    "transaction",
    "scheduled",
    "Queue",
    "Engine",
    "Client",
    "WorkflowHandle",
    "Workflow",
    "WorkflowStatus",
    "StepInfo",
    "Status",
    "QueueInfo",
    "QueueLimits",
    "ExecutorInfo",
    "Schedule",
    "start_workflow",
    "retrieve_workflow",
    "send",
    "get_event",
    "read_stream",
    "set_default_engine",
    "get_default_engine",
    "sleep",
    "recv",
    "set_event",
    "write_stream",
    "close_stream",
    "workflow_id",
    "sql_session",
    "sleep_async",
    "recv_async",
    "start_workflow_async",
    "send_async",
    "get_event_async",
    "set_event_async",
    "write_stream_async",
    "close_stream_async",
    "patched",
    "deprecate_patch",
    "step_attempt",
    "step_id",
    "cancelled",
]

__version__ = "0.1.0"

# Public objects say where users import them from (help(), reprs, docs), not which internal
# module defines them. Errors keep durable_core.errors, where they are documented.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("durable_core."):
        _obj.__module__ = __name__
del _name, _obj
