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
# The same effect under the application's own unique key (as a real order table would have).
UNIQUE_TABLE = "chaos_unique_effects"
UNIQUE_TABLE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {UNIQUE_TABLE} "
    "(workflow_id TEXT NOT NULL, step_id INTEGER NOT NULL, PRIMARY KEY (workflow_id, step_id))"
)
TOPIC = "partner"
SLEEP_SECONDS = 1.5

# A global rate limit spreads the run over the chaos window (and exercises a global limit).
chaos_queue = Queue("chaos", worker_concurrency=25, rate_limit=(8, 1.0))
outage_queue = Queue("outage", worker_concurrency=20)
contention_queue = Queue("contention", rate_limit=(3, 1.0))  # a steady trickle of new work
fault_queue = Queue("faults", worker_concurrency=8)  # tests/chaos/test_faults.py


def log_line(log: str, line: str) -> None:
    """One ``write`` on an O_APPEND file: whole lines, and they survive the writer's SIGKILL."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _mark(log: str, what: str, step_id: int) -> None:
    # The real wall clock, also in a worker whose time.time is shifted (tests.faultlab.clockshift):
    # the test compares these times with its own kill times.
    now = time.clock_gettime(time.CLOCK_REALTIME)
    log_line(log, f"{what} {workflow_id()} {step_id} {os.getpid()} {now!r}")


@step
def plain(log: str, step_id: int, work: float = 0.1) -> int:
    _mark(log, "start", step_id)
    time.sleep(work)  # the work: long enough that some SIGKILLs land inside a step
    _mark(log, "end", step_id)
    return step_id


@transaction
def effect(log: str, step_id: int, work: float = 0.0, unique: bool = False) -> int:
    if not unique:
        _mark(log, "start", step_id)
    sql_session().execute(
        text(f"INSERT INTO {APP_TABLE} (workflow_id, step_id, pid) VALUES (:w, :s, :p)"),
        {"w": workflow_id(), "s": step_id, "p": os.getpid()},
    )
    if unique:
        sql_session().execute(
            text(f"INSERT INTO {UNIQUE_TABLE} (workflow_id, step_id) VALUES (:w, :s)"),
            {"w": workflow_id(), "s": step_id},
        )
        # Marked once the writes are done: a test that sees "start" knows this open
        # transaction holds the unique key (and can freeze the process right there).
        _mark(log, "start", step_id)
    if work:
        time.sleep(work)  # the transaction stays open: a freeze can land inside it
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
def steady(
    log: str, index: int, steps: int, work: float, effect_work: float = 0.0, unique: bool = False
) -> int:
    """A chain of plain and @transaction steps (step IDs 1..steps), each plain step taking
    ``work`` seconds (each @transaction ``effect_work`` with its transaction open, and also
    writing under a unique key when ``unique``), so that work is in flight while the
    database is away."""
    for n in range(1, steps + 1):
        if n % 2:
            plain(log, n, work)
        else:
            effect(log, n, effect_work, unique)
    return index
