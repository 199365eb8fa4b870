"""A workflow's recorded history as one JSON document, and back.

``durable workflows export ID`` writes it; ``durable_core.testing.replay`` runs the current
code against it. It holds what a replay needs (the inputs, every recorded step with its name
and outcome, the outcomes of child workflows) and what a person reading it wants to see (the
events set, the messages received, the stream values written).

Values are kept as the serializer stored them. With the JSON serializer they are embedded as
JSON (``"encoding": "json"``), so the file reads and diffs well; with another serializer they
are the stored text (``"encoding": "text"``).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigurationError, WorkflowNotFound
from .store import SQLStore, StepRow, WorkflowRow

FORMAT = "durable-workflows/history"
VERSION = 1


def _parses(text: str | None) -> bool:
    if text is None:
        return True
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def export_history(store: SQLStore, workflow_id: str) -> dict[str, Any]:
    """The recorded history of ``workflow_id`` as a JSON-ready dict."""
    row = store.get_workflow(workflow_id)
    if row is None:
        raise WorkflowNotFound(workflow_id)
    steps = store.load_steps(workflow_id)
    child_ids = [s.child_workflow_id for s in steps if s.child_workflow_id]
    children = store.list_workflows(workflow_ids=child_ids, limit=None) if child_ids else []
    events = store.list_event_history(workflow_id)
    messages = store.list_messages(workflow_id)
    streams = store.list_stream_values(workflow_id)
    texts = [row.inputs, row.output, row.error]
    texts += [t for s in steps for t in (s.output, s.error)]
    texts += [t for c in children for t in (c.output, c.error)]
    texts += [e[2] for e in events] + [m[1] for m in messages] + [v[2] for v in streams]
    as_json = all(_parses(t) for t in texts)

    def value(text: str | None) -> Any:
        if text is None or not as_json:
            return text
        return json.loads(text)

    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(),
        "encoding": "json" if as_json else "text",
        "workflow": {
            "workflow_id": row.workflow_id,
            "name": row.name,
            "status": row.status,
            "queue": row.queue_name,
            "application_version": row.application_version,
            "inputs": value(row.inputs),
            "output": value(row.output),
            "error": value(row.error),
            "created_at": row.created_at,
            "finished_at": row.finished_at,
        },
        "steps": [
            {
                "step_id": s.step_id,
                "name": s.name,
                "output": value(s.output),
                "error": value(s.error),
                "child_workflow_id": s.child_workflow_id,
                "started_at": s.started_at,
                "finished_at": s.finished_at,
                "attempts": s.attempts,
            }
            for s in steps
        ],
        "children": {
            c.workflow_id: {
                "name": c.name,
                "status": c.status,
                "output": value(c.output),
                "error": value(c.error),
            }
            for c in children
        },
        "events": [{"step_id": e[0], "key": e[1], "value": value(e[2])} for e in events],
        "messages": [
            {"topic": m[0], "message": value(m[1]), "sent_at": m[2], "received": m[3] is not None}
            for m in messages
        ],
        "streams": [
            {"key": v[0], "seq": v[1], "value": value(v[2]), "closed": bool(v[3]), "step_id": v[4]}
            for v in streams
        ],
    }


@dataclass(frozen=True, slots=True)
class History:
    """A loaded history, with the stored text of every value restored."""

    workflow: WorkflowRow
    steps: list[StepRow]
    children: list[WorkflowRow]
    document: dict[str, Any]

    @property
    def finished(self) -> bool:
        return self.workflow.status not in ("PENDING", "ENQUEUED")


def load_history(source: dict[str, Any] | str | Path) -> History:
    """Read a history from a dict, a JSON string or a path to a JSON file."""
    if isinstance(source, Path) or (
        isinstance(source, str) and not source.lstrip().startswith("{")
    ):
        source = Path(source).read_text()
    doc = json.loads(source) if isinstance(source, str) else source
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ConfigurationError(f"not a workflow history (expected format {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise ConfigurationError(f"history version {doc.get('version')!r} is not {VERSION}")
    as_json = doc.get("encoding") == "json"

    def text(value: Any) -> str | None:
        if value is None:
            return None
        return json.dumps(value, separators=(",", ":")) if as_json else str(value)

    w = doc["workflow"]
    workflow = WorkflowRow(
        workflow_id=w["workflow_id"],
        name=w["name"],
        status=w["status"],
        queue_name=w.get("queue"),
        inputs=text(w["inputs"]),
        output=text(w.get("output")),
        error=text(w.get("error")),
        application_version=w.get("application_version"),
        created_at=w.get("created_at") or 0,
        updated_at=w.get("created_at") or 0,
        finished_at=w.get("finished_at"),
    )
    steps = [
        StepRow(
            s["step_id"],
            s["name"],
            text(s.get("output")),
            text(s.get("error")),
            s.get("child_workflow_id"),
            s.get("started_at"),
            s.get("finished_at"),
            s.get("attempts", 1),  # histories exported before attempts were recorded: 1
        )
        for s in doc.get("steps", [])
    ]
    children = [
        WorkflowRow(
            workflow_id=cid,
            name=c["name"],
            status=c["status"],
            output=text(c.get("output")),
            error=text(c.get("error")),
            parent_workflow_id=workflow.workflow_id,
        )
        for cid, c in doc.get("children", {}).items()
    ]
    return History(workflow, steps, children, doc)
