"""The research agent: each tool call is a durable step, notes and the report are written
exactly once by @transaction steps, and a human approves the draft through a message."""

from __future__ import annotations

import hashlib
import os
import time

from models import Note, Report

from durable_core import (
    close_stream,
    recv,
    set_event,
    sql_session,
    step,
    transaction,
    workflow,
    workflow_id,
    write_stream,
)

# Simulated tool latency, so a crash can land in the middle of the research.
STEP_DELAY = float(os.environ.get("AGENT_STEP_DELAY", "0.5"))
APPROVAL_TIMEOUT = float(os.environ.get("AGENT_APPROVAL_TIMEOUT", str(24 * 3600)))


def progress(stage: str, **detail: object) -> None:
    """Progress for the browser (SSE). Each write is a checkpoint, so a replay adds none."""
    write_stream("progress", {"stage": stage, **detail})


# -- tools: stand-ins for a search API and a page reader -----------------------------------


@step(retries=3, retry_delay=0.5)
def web_search(topic: str) -> list[str]:
    time.sleep(STEP_DELAY)
    slug = "-".join(topic.lower().split())[:40]
    return [f"https://example.org/{slug}/{n}" for n in ("overview", "history", "critique")]


@step(retries=3, retry_delay=0.5)
def read_page(url: str) -> str:
    time.sleep(STEP_DELAY)
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    return f"Key points of {url.rsplit('/', 1)[-1]} (doc {digest})."


@step
def draft_report(topic: str, summaries: list[str]) -> str:
    time.sleep(STEP_DELAY)
    bullets = "\n".join(f"- {s}" for s in summaries)
    return f"Report on {topic}\n{bullets}"


@transaction
def save_note(url: str, summary: str) -> int:
    session = sql_session()
    note = Note(workflow_id=workflow_id(), url=url, summary=summary)
    session.add(note)
    session.flush()
    return note.id


@transaction
def publish_report(body: str, comment: str) -> str:
    sql_session().add(Report(workflow_id=workflow_id(), body=body, reviewer_comment=comment))
    return workflow_id()


# -- the workflow ----------------------------------------------------------------------------


@workflow
def research(topic: str) -> dict:
    progress("searching", topic=topic)
    urls = web_search(topic)
    summaries = []
    for url in urls:
        summary = read_page(url)
        save_note(url, summary)
        summaries.append(summary)
        progress("read", url=url, summary=summary)
    report = draft_report(topic, summaries)
    set_event("draft", report)
    progress("awaiting_approval", draft=report)
    decision = recv("approval", timeout=APPROVAL_TIMEOUT) or {}
    if not decision.get("approved"):
        progress("rejected", comment=decision.get("comment", "no answer"))
        close_stream("progress")
        return {"status": "rejected", "comment": decision.get("comment", "")}
    publish_report(report, decision.get("comment", ""))
    progress("published")
    close_stream("progress")
    return {"status": "published", "report": report, "sources": len(urls)}
