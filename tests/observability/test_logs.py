"""Log records carry workflow_id and step_id; every library logger is under ``durable_core``;
without OpenTelemetry the hooks are no-ops and workflows run as before."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

from durable_core import observability, step, workflow

ROOT = Path(__file__).resolve().parents[2]
user_log = logging.getLogger("tests.observability.user")


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(observability.WorkflowContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@step
def noisy(n: int) -> int:
    user_log.warning("inside the step %d", n)
    return n


@workflow
def logging_workflow(n: int) -> int:
    user_log.warning("in the workflow body")
    noisy(n)
    noisy(n + 1)
    return n


def test_log_records_carry_workflow_and_step_ids(engine):
    handler = Capture()
    user_log.addHandler(handler)
    try:
        handle = engine.start_workflow(logging_workflow, 7)
        assert handle.result(timeout=10) == 7
        user_log.warning("outside any workflow")
    finally:
        user_log.removeHandler(handler)
    seen = [(r.getMessage(), r.workflow_id, r.step_id) for r in handler.records]
    wid = handle.workflow_id
    assert seen == [
        ("in the workflow body", wid, None),
        ("inside the step 7", wid, 1),
        ("inside the step 8", wid, 2),
        ("outside any workflow", None, None),
    ]
    formatted = logging.Formatter("%(workflow_id)s/%(step_id)s %(message)s").format(
        handler.records[1]
    )
    assert formatted == f"{wid}/1 inside the step 7"


def test_without_opentelemetry_the_hooks_are_no_ops(engine, monkeypatch):
    """As if the ``otel`` extra were not installed: no trace context stored, workflows run,
    log records still carry the IDs."""
    monkeypatch.setattr(observability, "trace", None)
    assert not observability.tracing_available()
    handler = Capture()
    user_log.addHandler(handler)
    try:
        handle = engine.start_workflow(logging_workflow, 1)
        assert handle.result(timeout=10) == 1
    finally:
        user_log.removeHandler(handler)
    assert engine.store.get_workflow(handle.workflow_id).trace_context is None
    assert [r.step_id for r in handler.records] == [None, 1, 2]


def test_every_logger_is_under_durable_core():
    """``logging.getLogger(...)`` in the core uses a literal name under ``durable_core``, so one
    logger configuration covers the library."""
    names = []
    for path in sorted((ROOT / "durable_core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "getLogger"
            ):
                arg = node.args[0] if node.args else None
                assert isinstance(arg, ast.Constant), f"{path}: getLogger with a computed name"
                if path.name == "cli.py" and arg.value in ("django_durable", "fastapi_durable"):
                    continue  # the CLI's --log-level also covers the integrations it mounts in
                names.append(arg.value)
    assert names, "no loggers found"
    assert all(n == "durable_core" or n.startswith("durable_core.") for n in names), names
