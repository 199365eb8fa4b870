"""Tracing and log context: OpenTelemetry spans for workflows and steps, and a logging filter.

Optional. With ``opentelemetry-api`` installed (extra ``otel``) each execution of a workflow is
a span ``workflow <name>`` and each step that runs (a replayed step does not run) is a child
span ``step <name>``. The trace context of the code that started or enqueued a workflow is
stored with it (``durable_workflows.trace_context``), so that the workflow's span is a child of
that context, and linked to it, wherever and however often it runs: in the background of this
process, after a dequeue on another worker, after recovery. Without the package every hook is a
constant no-op, so the step hot path pays one small object and a context-variable set.

Logs: ``WorkflowContextFilter`` gives every record ``workflow_id`` and ``step_id`` attributes
taken from the code that logs (None outside a workflow or a step).
"""

from __future__ import annotations

import contextvars
import json
import logging
from typing import TYPE_CHECKING, Any

from .context import Aborted, Suspend, active

if TYPE_CHECKING:
    from .context import WorkflowContext
    from .store import WorkflowRow

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Link, Status, StatusCode
except ImportError:  # the ``otel`` extra is not installed: every hook below is a no-op
    trace = None  # type: ignore[assignment]

__all__ = [
    "WorkflowContextFilter",
    "current_step_id",
    "current_trace_context",
    "set_tracer_provider",
    "tracing_available",
]

INSTRUMENTATION_NAME = "durable_core"

# The step whose body is running in this thread or task (for log records).
_step_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "durable_step_id", default=None
)
_provider: Any = None
_tracer: Any = None


def tracing_available() -> bool:
    """True when ``opentelemetry-api`` is importable, so spans are created."""
    return trace is not None


def set_tracer_provider(provider: Any) -> None:
    """Use ``provider`` for durable spans instead of OpenTelemetry's global one (None: the
    global one again). Handy in tests and where the global provider belongs to someone else."""
    global _provider, _tracer
    _provider = provider
    _tracer = None


def _get_tracer() -> Any:
    global _tracer
    if _tracer is None:
        if _provider is not None:
            _tracer = _provider.get_tracer(INSTRUMENTATION_NAME)
        else:
            # A proxy that follows whatever global provider is set later.
            _tracer = trace.get_tracer(INSTRUMENTATION_NAME)
    return _tracer


def _recording() -> bool:
    """True when spans would go somewhere: OpenTelemetry is installed and a tracer provider
    is configured (ours, or a global one set by the application). With only the API installed
    (as other libraries pull it in), spans are skipped instead of built as no-ops, which would
    cost every step tens of microseconds."""
    if trace is None:
        return False
    if _provider is not None:
        return True
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def current_step_id() -> int | None:
    """The ID of the step whose body is running here, None outside a step."""
    return _step_id.get()


def current_trace_context() -> str | None:
    """The active span's context as JSON-encoded propagation headers (``traceparent`` …), to
    store with a workflow being created; None without an active span or without OpenTelemetry."""
    if trace is None or not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return json.dumps(carrier, sort_keys=True) if carrier else None


def _stored_context(trace_context: str | None) -> Any:
    if not trace_context:
        return None
    try:
        carrier = json.loads(trace_context)
    except ValueError:
        return None
    if not isinstance(carrier, dict):
        return None
    return propagate.extract({str(k): str(v) for k, v in carrier.items()})


def _error_status(span: Any, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


# -- spans -------------------------------------------------------------------------------------


class _NoSpan:
    """The workflow hook when OpenTelemetry is absent."""

    __slots__ = ()

    def record(self, exc: BaseException) -> None:
        pass

    def end(self) -> None:
        pass


_NO_SPAN = _NoSpan()


class _WorkflowSpan:
    """One execution of a workflow; the current span while it runs (steps nest under it)."""

    __slots__ = ("span", "token", "exc")

    def __init__(self, ctx: WorkflowContext, row: WorkflowRow) -> None:
        parent = _stored_context(row.trace_context)
        links = []
        if parent is not None:
            linked = trace.get_current_span(parent).get_span_context()
            if linked.is_valid:
                links.append(Link(linked))
        attributes = {
            "durable.workflow.id": ctx.workflow_id,
            "durable.workflow.name": ctx.name,
            "durable.executor.id": ctx.engine.executor_id,
            "durable.workflow.recovery_attempts": row.recovery_attempts,
            "durable.workflow.replayed_steps": len(ctx.recorded),
        }
        if row.queue_name:
            attributes["durable.workflow.queue"] = row.queue_name
        if row.parent_workflow_id:
            attributes["durable.workflow.parent_id"] = row.parent_workflow_id
        self.span = _get_tracer().start_span(
            f"workflow {ctx.name}", context=parent, links=links, attributes=attributes
        )
        self.token = otel_context.attach(trace.set_span_in_context(self.span))
        self.exc: BaseException | None = None

    def record(self, exc: BaseException) -> None:
        self.exc = exc

    def end(self) -> None:
        exc, span = self.exc, self.span
        if exc is None:
            span.set_attribute("durable.workflow.status", "SUCCESS")
        elif isinstance(exc, Suspend):
            span.set_attribute("durable.workflow.status", "SUSPENDED")  # resumes in a new span
        elif isinstance(exc, Aborted):
            span.set_attribute("durable.workflow.status", "ABORTED")
        else:
            span.set_attribute("durable.workflow.status", "ERROR")
            _error_status(span, exc)
        try:
            otel_context.detach(self.token)
        finally:
            span.end()


def workflow_span(ctx: WorkflowContext, row: WorkflowRow) -> Any:
    """Start the span of one execution of a workflow; call ``record(exc)`` when it raises and
    ``end()`` when it is over, in the same thread."""
    if not _recording():
        return _NO_SPAN
    return _WorkflowSpan(ctx, row)


class StepSpan:
    """``with step_span(...) as span:`` around a step's body; ``span.outcome(exc)`` records a
    returned (not raised) error. Always marks the running step for log records."""

    __slots__ = ("ctx", "step_id", "name", "exc", "span", "token", "step_token")

    def __init__(self, ctx: WorkflowContext, step_id: int, name: str) -> None:
        self.ctx = ctx
        self.step_id = step_id
        self.name = name
        self.exc: BaseException | None = None
        self.span: Any = None

    def __enter__(self) -> StepSpan:
        self.step_token = _step_id.set(self.step_id)
        if _recording():
            self.span = _get_tracer().start_span(
                f"step {self.name}",
                attributes={
                    "durable.workflow.id": self.ctx.workflow_id,
                    "durable.workflow.name": self.ctx.name,
                    "durable.step.id": self.step_id,
                    "durable.step.name": self.name,
                },
            )
            self.token = otel_context.attach(trace.set_span_in_context(self.span))
        return self

    def outcome(self, exc: BaseException | None) -> None:
        self.exc = exc

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        _step_id.reset(self.step_token)
        span = self.span
        if span is None:
            return
        exc = exc if exc is not None else self.exc
        if exc is None:
            span.set_attribute("durable.step.status", "SUCCESS")
        elif isinstance(exc, Suspend | Aborted):
            span.set_attribute("durable.step.status", "ABORTED")
        else:
            span.set_attribute("durable.step.status", "ERROR")
            _error_status(span, exc)
        try:
            otel_context.detach(self.token)
        finally:
            span.end()


def step_span(ctx: WorkflowContext, step_id: int, name: str) -> StepSpan:
    return StepSpan(ctx, step_id, name)


class _NoOperation:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


_NO_OPERATION = _NoOperation()


class OperationSpan:
    """``durable.<operation>`` around a workflow operation (sleep, recv, send, events,
    streams and reading them, enqueue): the current span while it runs; a wait that gives back its thread
    ends it with status SUSPENDED (the operation resumes in a new execution)."""

    __slots__ = ("span", "token")

    def __init__(self, operation: str, attributes: dict[str, Any], current: bool = True) -> None:
        ctx = active()
        if ctx is not None:
            attributes["durable.workflow.id"] = ctx.workflow_id
            attributes["durable.workflow.name"] = ctx.name
        self.span = _get_tracer().start_span(
            f"durable.{operation}",
            attributes={k: v for k, v in attributes.items() if v is not None},
        )
        self.token = otel_context.attach(trace.set_span_in_context(self.span)) if current else None

    def __enter__(self) -> OperationSpan:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        span = self.span
        if exc is None:
            span.set_attribute("durable.operation.status", "SUCCESS")
        elif isinstance(exc, Suspend):
            span.set_attribute("durable.operation.status", "SUSPENDED")
        elif isinstance(exc, Aborted):
            span.set_attribute("durable.operation.status", "ABORTED")
        elif isinstance(exc, GeneratorExit):  # a stream's reader stopped before its end
            span.set_attribute("durable.operation.status", "CLOSED")
        else:
            span.set_attribute("durable.operation.status", "ERROR")
            _error_status(span, exc)
        try:
            if self.token is not None:
                otel_context.detach(self.token)
        finally:
            span.end()


def operation_span(operation: str, current: bool = True, **attributes: Any) -> Any:
    """A context manager: the span of one workflow operation, or a constant no-op when no
    spans are recorded. ``attributes`` are added with a ``durable.`` prefix (None skipped).
    ``current=False`` keeps the caller's span current (an enqueue: the workflow stays a
    child of the code that enqueued it, a sibling of this span)."""
    if not _recording():
        return _NO_OPERATION
    attrs = {f"durable.{k}": v for k, v in attributes.items()}
    return OperationSpan(operation, attrs, current)


# -- logs --------------------------------------------------------------------------------------


class WorkflowContextFilter(logging.Filter):
    """Adds ``workflow_id`` and ``step_id`` to every record it sees (None outside a workflow or
    a step), so formats such as ``%(workflow_id)s`` work. Add it to a *handler*
    (``handler.addFilter(WorkflowContextFilter())``): a filter on a logger sees only records
    logged on that very logger, not on its children."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "workflow_id"):
            ctx = active()
            record.workflow_id = ctx.workflow_id if ctx is not None else None
        if not hasattr(record, "step_id"):
            record.step_id = _step_id.get()
        return True
