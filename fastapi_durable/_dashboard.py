"""What the dashboard shows, as JSON: one workflow's page (its step timeline with durations,
retries and waits, events, messages, streams, children, tracebacks), the fleet (queues with
their depth and limits, executors, schedules), and a Server-Sent Events feed of changes that
lets an open page refresh itself.

Everything is read from the system database through the engine's store, so the dashboard of
one web process shows the whole fleet's work, not only its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool

from durable_core import Engine
from durable_core.errors import WorkflowNotFound
from durable_core.integration import REGISTRY, WaitMark, read_wait_mark

from ._models import WorkflowOut, _jsonable
from ._shutdown import ShutdownSignal

INTERNAL_QUEUE = "_durable_internal"
#: How many values of each stream the workflow page shows (the newest).
STREAM_TAIL = 50
#: How many messages the workflow page lists (the newest).
MESSAGES_SHOWN = 200
STEP_KINDS = {
    "durable.sleep": "sleep",
    "durable.recv": "recv",
    "durable.get_event": "get_event",
    "durable.send": "send",
    "durable.set_event": "set_event",
    "durable.write_stream": "stream",
    "durable.close_stream": "stream",
}


def _iso(ms: int | float | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


def _value(engine: Engine, text: str | None) -> Any:
    """A stored value for display: decoded by the engine's serializer, as JSON; the stored
    text itself when it cannot be decoded here (a pickled class this process lacks)."""
    if text is None:
        return None
    try:
        return _jsonable(engine.serializer.loads(text))
    except Exception:
        return text


def error_parts(text: str | None) -> dict[str, Any] | None:
    """A stored error as {summary, type, message, traceback, attempts}: for a step whose retries
    ran out, the last attempt's error and traceback, and how many attempts there were."""
    if not text:
        return None
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return {"summary": text, "type": None, "message": text, "traceback": "", "attempts": None}
    kind = str(payload.get("type", "Exception")).replace(":", ".")
    message = str(payload.get("message", ""))
    attrs = payload.get("attrs") or {}
    attempts = attrs.get("attempts") if isinstance(attrs.get("attempts"), int) else None
    traceback = payload.get("traceback") or ""
    summary = f"{kind.rpartition('.')[2]}: {message}"
    last = attrs.get("last_error")
    if isinstance(last, dict) and isinstance(last.get("v"), dict):
        inner = last["v"]
        traceback = inner.get("traceback") or traceback
    return {
        "summary": summary,
        "type": kind,
        "message": message,
        "traceback": traceback,
        "attempts": attempts,
    }


def workflow_page(engine: Engine, workflow_id: str) -> dict[str, Any]:
    """Everything the workflow page shows; ``WorkflowNotFound`` for an unknown ID."""
    store = engine.store
    row = store.get_workflow(workflow_id)
    if row is None:
        raise WorkflowNotFound(workflow_id)
    status = engine.get_workflow_status(workflow_id)
    recorded = store.load_steps(workflow_id)
    marks = {-s.step_id: s for s in recorded if s.step_id < 0}  # wait deadlines
    steps = [s for s in recorded if s.step_id > 0]
    child_ids = [s.child_workflow_id for s in steps if s.child_workflow_id]
    children = (
        {c.workflow_id: c for c in store.list_workflows(workflow_ids=child_ids, limit=None)}
        if child_ids
        else {}
    )
    now = store.now_ms()
    step_rows = []
    for s in steps:
        kind = "child" if s.child_workflow_id else STEP_KINDS.get(s.name, "step")
        output = _value(engine, s.output)
        error = error_parts(s.error)
        item: dict[str, Any] = {
            "step_id": s.step_id,
            "name": s.name,
            "kind": kind,
            "started_at": _iso(s.started_at),
            "finished_at": _iso(s.finished_at),
            "duration_ms": None
            if s.started_at is None or s.finished_at is None
            else max(s.finished_at - s.started_at, 0),
            "result": None if kind == "sleep" else output,
            "error": error,
            "attempts": s.attempts,
            "child_workflow_id": s.child_workflow_id,
            "child_status": children[s.child_workflow_id].status
            if s.child_workflow_id in children
            else None,
            "wait": None,
        }
        if kind == "sleep" and isinstance(output, int | float):
            item["wait"] = {"what": "sleep", "until": _iso(output * 1000)}
        elif kind in ("recv", "get_event"):
            mark = marks.get(s.step_id)
            wait = read_wait_mark(mark.output, engine.serializer) if mark else None
            item["wait"] = {
                **_wait_target(wait),
                "what": wait.describe()
                if wait is not None and wait.kind
                else ("a message" if kind == "recv" else "an event"),
                "until": _iso(wait.deadline * 1000) if wait and wait.deadline else None,
                "outcome": "timed out" if s.output is None else "arrived",
            }
        step_rows.append(item)
    streams: dict[str, dict[str, Any]] = {}
    for key, seq, value, is_close, _step in store.list_stream_values(workflow_id):
        stream = streams.setdefault(key, {"key": key, "count": 0, "closed": False, "values": []})
        if is_close:
            stream["closed"] = True
        else:
            stream["count"] += 1
            stream["values"].append({"seq": seq, "value": _value(engine, value)})
    for stream in streams.values():
        stream["values"] = stream["values"][-STREAM_TAIL:]
    messages = store.list_messages(workflow_id)
    return {
        "workflow": {
            **WorkflowOut.of(status).model_dump(mode="json"),
            "not_before": _iso(row.not_before),
            "deadline": _iso(row.deadline),
            "timeout_ms": row.timeout_ms,
            "max_recovery_attempts": row.max_recovery_attempts,
        },
        "error": error_parts(row.error),
        "waiting": _waiting(engine, row, steps, marks, now),
        "steps": step_rows,
        "children": [
            {"workflow_id": c.workflow_id, "name": c.name, "status": c.status}
            for c in children.values()
        ],
        "events": [
            {"step_id": step_id, "key": key, "value": _value(engine, value)}
            for step_id, key, value in store.list_event_history(workflow_id)
        ],
        "messages": [
            {
                "topic": topic,
                "message": _value(engine, message),
                "sent_at": _iso(sent),
                "consumed_at": _iso(consumed),
            }
            for topic, message, sent, consumed in messages[-MESSAGES_SHOWN:]
        ],
        "messages_total": len(messages),
        "streams": list(streams.values()),
    }


def _waiting(
    engine: Engine, row: Any, steps: list[Any], marks: dict[int, Any], now: int
) -> dict[str, Any] | None:
    """What an unfinished workflow is waiting for, and until when, in words."""
    if row.status == "ENQUEUED":
        if row.not_before and row.not_before > now:
            return {
                "what": f"held back on queue {row.queue_name!r} (delay)",
                "until": _iso(row.not_before),
            }
        return {"what": f"a worker serving queue {row.queue_name!r}", "until": None}
    if row.status != "PENDING":
        return None
    recorded = {s.step_id for s in steps}
    for step_id, mark in sorted(marks.items()):
        if step_id not in recorded:
            wait = read_wait_mark(mark.output, engine.serializer)
            return {
                **_wait_target(wait),
                "what": wait.describe()
                if wait.kind
                else f"a message or an event (step {step_id}: recv or get_event)",
                "until": _iso(wait.deadline * 1000) if wait.deadline is not None else None,
                "step_id": step_id,
            }
    if steps:
        last = steps[-1]
        if last.name == "durable.sleep":
            value = _value(engine, last.output)
            wake = float(value) * 1000 if isinstance(value, int | float) else 0
            if wake > now:
                return {"what": "sleep", "until": _iso(wake), "step_id": last.step_id}
        if last.child_workflow_id:
            return {
                "what": f"child workflow {last.child_workflow_id}",
                "until": _iso(row.deadline),
                "step_id": last.step_id,
                "child_workflow_id": last.child_workflow_id,
            }
    return {
        "what": f"step {len(steps) + 1} running on executor {row.executor_id}",
        "until": _iso(row.deadline),
    }


def _wait_target(wait: WaitMark | None) -> dict[str, Any]:
    """What a recv or get_event waits for, as fields (None where its mark does not say)."""
    return {
        "kind": None if wait is None else wait.kind,
        "topic": None if wait is None else wait.topic,
        "target_workflow_id": None if wait is None else wait.workflow_id,
        "key": None if wait is None else wait.key,
    }


def fleet(engine: Engine) -> dict[str, Any]:
    """Queues with their depth, age and limits; executors; schedules; the names a filter can
    choose from (every registered workflow and queue)."""
    store = engine.store
    now = store.now_ms()
    lease_ms = int(engine.lease_seconds * 1000)
    backlog = {q: (e, p, since) for q, e, p, since in store.queue_backlog(now)}
    queues = []
    for name in sorted((set(backlog) | set(REGISTRY.queues)) - {INTERNAL_QUEUE}):
        declared = REGISTRY.queues.get(name)
        enqueued, running, since = backlog.get(name, (0, 0, None))
        rate = getattr(declared, "rate_limit", None)
        queues.append(
            {
                "name": name,
                "declared": declared is not None,
                "enqueued": enqueued,
                "running": running,
                "oldest_ready_age_s": None if since is None else max(now - since, 0) / 1000,
                "concurrency": getattr(declared, "concurrency", None),
                "worker_concurrency": getattr(declared, "worker_concurrency", None),
                "rate_limit": None if rate is None else {"count": rate[0], "seconds": rate[1]},
                "priority_enabled": bool(getattr(declared, "priority_enabled", False)),
            }
        )
    held = {e: sum(names.values()) for e, names in store.running_by_executor().items()}
    executors = [
        {
            "executor_id": executor_id,
            "application_version": version,
            "hostname": hostname,
            "pid": pid,
            "started_at": _iso(started),
            "heartbeat_at": _iso(beat),
            "heartbeat_age_s": max(now - beat, 0) / 1000,
            "live": now - beat < lease_ms,
            "running": held.get(executor_id, 0),
            "this_process": executor_id == engine.executor_id,
        }
        for executor_id, version, hostname, pid, started, beat in store.executors()
    ]
    return {
        "now": _iso(now),
        "lease_seconds": engine.lease_seconds,
        "queues": queues,
        "executors": executors,
        "schedules": schedules(engine, now),
        "workflow_names": sorted(REGISTRY.workflows),
        "queue_names": [q["name"] for q in queues],
    }


def schedules(engine: Engine, now: int) -> list[dict[str, Any]]:
    """Every ``@scheduled`` workflow this process registers: cron, next tick, last run."""
    from croniter import croniter

    moment = dt.datetime.fromtimestamp(now / 1000, dt.UTC)
    rows = []
    for name in sorted(REGISTRY.workflows):
        cron = getattr(REGISTRY.workflows[name], "schedule", None)
        if not cron:
            continue
        last = engine.store.list_workflows(name=name, limit=1)
        rows.append(
            {
                "name": name,
                "cron": cron,
                "next": croniter(cron, moment).get_next(dt.datetime).isoformat(),
                "last": None
                if not last
                else {
                    "workflow_id": last[0].workflow_id,
                    "status": last[0].status,
                    "created_at": _iso(last[0].created_at),
                },
            }
        )
    return rows


# -- live refresh ------------------------------------------------------------------------------

#: Seconds between two looks at the database when no wake-up signal arrives; signals (NOTIFY on
#: PostgreSQL, this process's own commits on SQLite) make a change show sooner.
CHANGES_POLL = 2.0


def _fingerprint(engine: Engine) -> tuple[Any, ...]:
    """A cheap summary that changes when the listing would: the newest workflow (one probe of
    the created index) and the in-flight counts per queue (the partial indexes)."""
    store = engine.store
    newest = store.list_workflows(limit=1)
    return (
        newest[0].workflow_id if newest else None,
        newest[0].status if newest else None,
        tuple(store.queue_backlog(0)),
        tuple(sorted((e, sum(n.values())) for e, n in store.running_by_executor().items())),
    )


async def change_events(
    engine: Engine,
    shutdown: ShutdownSignal | None,
    *,
    poll: float = CHANGES_POLL,
    keepalive: float = 15.0,
) -> AsyncIterator[str]:
    """SSE: a ``change`` event with the IDs whose status changed (as far as this process
    heard) whenever the fleet's work changes; comment keep-alives; cut at shutdown."""
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()
    changed: set[str] = set()

    def listener(kind: str, ident: str) -> None:
        if kind in ("w", "q", "c", "s", "e", "m"):
            if kind in ("w", "c", "s", "e", "m"):
                changed.add(ident)
            loop.call_soon_threadsafe(woken.set)

    engine.notifier.listeners.append(listener)
    engine.notifier.listen_queues = True  # new work on the queues is a change to show
    stopping = asyncio.ensure_future(
        shutdown.wait() if shutdown is not None else asyncio.Event().wait()
    )
    try:
        yield "retry: 3000\n\n"
        seen = await run_in_threadpool(_fingerprint, engine)
        idle = 0.0
        while not stopping.done():
            waiter = asyncio.ensure_future(woken.wait())
            done, _ = await asyncio.wait(
                {waiter, stopping}, timeout=poll, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            if stopping in done:
                return
            woken.clear()
            ids, changed_now = sorted(changed), bool(changed)
            changed.clear()
            current = await run_in_threadpool(_fingerprint, engine)
            if current != seen or changed_now:
                seen = current
                idle = 0.0
                yield f"event: change\ndata: {json.dumps({'workflow_ids': ids[:100]})}\n\n"
                await asyncio.sleep(0.25)  # at most a few refreshes a second, however busy
            else:
                idle += poll
                if idle >= keepalive:
                    idle = 0.0
                    yield ": keep-alive\n\n"
    finally:
        stopping.cancel()
        with contextlib.suppress(ValueError):
            engine.notifier.listeners.remove(listener)


__all__ = ["change_events", "error_parts", "fleet", "workflow_page"]
