"""Replay testing: run the current code against a recorded history, without side effects.

The history (``durable workflows export ID``, or ``engine.export_workflow(id)``) is loaded into
a private temporary database and the workflow function runs in a replay-only execution: every
call must find its recorded outcome under the same name, and nothing new runs, waits or is
written. A renamed, removed or reordered step raises ``NonDeterministicWorkflow`` naming the
step; a change that keeps the recorded calls (a new step body, a ``patched()`` branch) passes.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import context as ctxmod
from ..context import HistoryEnded, Suspend, WorkflowContext
from ..engine import Engine
from ..errors import ConfigurationError, NonDeterministicWorkflow
from ..history import History, load_history
from ..registry import REGISTRY
from ..serialization import decode_arguments
from ..store import WorkflowRow


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay reached: ``completed`` when the code ran to its end (then ``result``
    or ``error`` holds its outcome), else it stopped where the history ends, at ``step_id``."""

    workflow_id: str
    name: str
    steps_replayed: int
    completed: bool
    result: Any = None
    error: BaseException | None = None


def replay(
    history: dict[str, Any] | str | Path,
    *,
    workflow: Any = None,
    serializer: Any = "json",
) -> ReplayResult:
    """Replay a recorded history against the workflow code registered in this process.

    ``workflow`` overrides which function replays it (default: the one registered under the
    history's name). Raises ``NonDeterministicWorkflow`` when the code calls a step the history
    recorded under another name, calls more steps than a finished history holds, or finishes
    without calling steps the history holds.
    """
    loaded = load_history(history)
    name = loaded.workflow.name
    if workflow is not None:
        defn = getattr(workflow, "__durable_workflow__", None)
        if defn is None:
            raise TypeError(f"workflow must be a @workflow function, not {workflow!r}")
    else:
        defn = REGISTRY.get(name)
        if defn is None:
            raise ConfigurationError(
                f"No workflow named {name!r} is registered in this process; import the module "
                "that declares it before replaying its history (or pass workflow=)."
            )
    with tempfile.TemporaryDirectory(prefix="durable-replay-") as directory:
        engine = Engine(
            f"sqlite:///{directory}/replay.sqlite3",
            executor_id=f"replay-{uuid.uuid4().hex[:8]}",
            serializer=serializer,
            queues=[],
            run_scheduler=False,
            recover=False,
            suspend_threshold=0.0,
        )
        engine.launch()
        try:
            row = _import(engine, loaded)
            return _run(engine, defn, row, loaded)
        finally:
            engine.shutdown(timeout=0)


def _import(engine: Engine, history: History) -> WorkflowRow:
    """Store the history in the replay database: the workflow as PENDING here, its steps,
    and its children's outcomes (a replayed child call reads the child's result)."""
    token = uuid.uuid4().hex
    w = history.workflow
    row = WorkflowRow(
        workflow_id=w.workflow_id,
        name=w.name,
        status="PENDING",
        inputs=w.inputs,
        executor_id=engine.executor_id,
        run_token=token,
        application_version=w.application_version,
        created_at=w.created_at,
        updated_at=w.created_at,
    )
    engine.store.insert_workflow(row)
    for child in history.children:
        child.created_at = child.updated_at = w.created_at
        engine.store.insert_workflow(child)
    for s in history.steps:
        engine.store.record_step(
            row.workflow_id,
            token,
            s.step_id,
            s.name,
            s.output,
            s.error,
            s.child_workflow_id,
            s.started_at or 0,
            attempts=s.attempts,
        )
    return row


def _run(engine: Engine, defn: Any, row: WorkflowRow, history: History) -> ReplayResult:
    steps = {s.step_id: s for s in history.steps}
    ctx = WorkflowContext(
        engine=engine,
        workflow_id=row.workflow_id,
        name=defn.name,
        run_token=row.run_token or "",
        recorded=dict(steps),
        is_async=defn.is_async,
        can_suspend=not defn.is_async,
        replay_only=True,
    )
    args, kwargs = decode_arguments(engine.serializer, row.inputs)
    token = ctxmod.set_current(ctx)
    try:
        if defn.is_async:
            value = asyncio.run(defn.fn(*args, **kwargs))
        else:
            value = defn.fn(*args, **kwargs)
        error = None
    except HistoryEnded as ended:
        if history.finished and ended.name != "a wait":
            raise NonDeterministicWorkflow(
                row.workflow_id, ended.step_id, "nothing (the recorded run ended here)", ended.name
            ) from None
        return ReplayResult(row.workflow_id, defn.name, ctx.step_counter, completed=False)
    except Suspend:  # waiting at the end of an unfinished history
        return ReplayResult(row.workflow_id, defn.name, ctx.step_counter, completed=False)
    except NonDeterministicWorkflow:
        raise
    except Exception as exc:  # the workflow's own outcome, replayed (a recorded step's error)
        value, error = None, exc
    finally:
        ctxmod.reset_current(token)
    recorded = sorted(i for i in steps if i > 0)
    missing = [i for i in recorded if i > ctx.step_counter]
    if missing and history.finished:
        first = steps[missing[0]]
        raise NonDeterministicWorkflow(
            row.workflow_id, first.step_id, first.name, "nothing (the workflow returned)"
        )
    return ReplayResult(
        row.workflow_id, defn.name, ctx.step_counter, completed=True, result=value, error=error
    )
