"""Workflows that the chaos and outage tests run in real worker processes.

Every step execution appends ``start``/``end`` lines (workflow, step, pid, time) to a shared
side-effect log, so the test can count executions per step and per process after SIGKILLs.
Each ``@transaction`` step inserts one row keyed by (workflow, step) into an application table
without a unique constraint, so a duplicate effect would show as a second row.
"""

from __future__ import annotations

import os
import time

from sqlalchemy import text

from durable_core import (
    Queue,
    recv,
    send,
    sleep,
    sql_session,
    step,
    transaction,
    workflow,
    workflow_id,
)

APP_TABLE = "chaos_effects"
APP_TABLE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {APP_TABLE} "
    "(workflow_id TEXT NOT NULL, step_id INTEGER NOT NULL, pid INTEGER NOT NULL)"
)
TOPIC = "partner"
SLEEP_SECONDS = 1.5

# A global rate limit spreads the run over the chaos window (and exercises a global limit).
chaos_queue = Queue("chaos", worker_concurrency=25, rate_limit=(8, 1.0))
outage_queue = Queue("outage", worker_concurrency=20)
contention_queue = Queue("contention", rate_limit=(3, 1.0))  # a steady trickle of new work


def log_line(log: str, line: str) -> None:
    """One ``write`` on an O_APPEND file: whole lines, and they survive the writer's SIGKILL."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _mark(log: str, what: str, step_id: int) -> None:
    log_line(log, f"{what} {workflow_id()} {step_id} {os.getpid()} {time.time()!r}")


@step
def plain(log: str, step_id: int, work: float = 0.1) -> int:
    _mark(log, "start", step_id)
    time.sleep(work)  # the work: long enough that some SIGKILLs land inside a step
    _mark(log, "end", step_id)
    return step_id


@transaction
def effect(log: str, step_id: int) -> int:
    _mark(log, "start", step_id)
    sql_session().execute(
        text(f"INSERT INTO {APP_TABLE} (workflow_id, step_id, pid) VALUES (:w, :s, :p)"),
        {"w": workflow_id(), "s": step_id, "p": os.getpid()},
    )
    _mark(log, "end", step_id)
    return step_id


@workflow
def paired(log: str, index: int, partner: str) -> list:
    """plain, @transaction, send to the partner, durable sleep, recv from the partner, plain:
    recorded step IDs 1..6."""
    me = workflow_id()
    plain(log, 1)
    effect(log, 2)
    send(partner, {"from": me, "index": index}, topic=TOPIC)
    sleep(SLEEP_SECONDS)
    got = recv(TOPIC, timeout=240)
    plain(log, 6)
    return [index, got]


@workflow
def steady(log: str, index: int, steps: int, work: float) -> int:
    """A chain of plain and @transaction steps (step IDs 1..steps), each plain step taking
    ``work`` seconds, so that work is in flight while the database is away."""
    for n in range(1, steps + 1):
        if n % 2:
            plain(log, n, work)
        else:
            effect(log, n)
    return index
