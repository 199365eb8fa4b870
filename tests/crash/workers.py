"""Workflows that the crash and multi-process tests run in real worker processes.

They live in an importable module (never ``__main__``) so that their registered names are the
same in every process. Each step appends to a side-effect log with fsync, so the test can read
what ran, and how often, after a process was killed mid-way.
"""

from __future__ import annotations

import os
import threading
import time

from sqlalchemy import text

from durable_core import Queue, recv, sleep, sql_session, step, transaction, workflow

APP_TABLE = "crash_rows"
APP_TABLE_DDL = f"CREATE TABLE IF NOT EXISTS {APP_TABLE} (tag TEXT NOT NULL, created_at FLOAT)"

concurrency_queue = Queue("crash_concurrency", concurrency=2, worker_concurrency=1)
rate_queue = Queue("crash_rate", rate_limit=(10, 1.0))
priority_queue = Queue("crash_priority", worker_concurrency=1, priority_enabled=True)
fleet_queue = Queue("crash_fleet", worker_concurrency=10)
dedup_queue = Queue("crash_dedup")
control_queue = Queue("crash_control")  # limits come from the database (set at run time)
control_marker_queue = Queue("crash_control_marker")


def append(log: str, line: str) -> None:
    """Append one line durably: the test reads this file after SIGKILL."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_lines(log: str) -> list[str]:
    try:
        with open(log) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def wait_to_be_killed() -> None:
    """Block until the test SIGKILLs this process (it is never released otherwise)."""
    threading.Event().wait()


# -- several steps, one of which blocks on its first attempt ----------------------------------


@step
def numbered(log: str, n: int, block_at: int) -> int:
    append(log, f"started {n}")
    if n == block_at and read_lines(log).count(f"started {n}") == 1:
        wait_to_be_killed()
    append(log, f"done {n}")
    return n * 10


@workflow
def five_steps(log: str, block_at: int) -> list[int]:
    return [numbered(log, n, block_at) for n in range(1, 6)]


@step
def always_crashes(log: str) -> None:
    append(log, "attempt")
    wait_to_be_killed()


@workflow(max_recovery_attempts=2)
def crash_loop(log: str) -> None:
    always_crashes(log)


# -- a @transaction step whose effect must happen exactly once --------------------------------


@transaction
def insert_row(log: str, tag: str, block_inside: bool) -> str:
    sql_session().execute(
        text(f"INSERT INTO {APP_TABLE} (tag, created_at) VALUES (:tag, :t)"),
        {"tag": tag, "t": time.time()},
    )
    append(log, f"inserted {tag}")
    if block_inside and read_lines(log).count(f"inserted {tag}") == 1:
        wait_to_be_killed()  # the transaction is open: the kill rolls it back
    return tag


@step
def note(log: str, line: str) -> str:
    append(log, line)
    return line


@workflow
def insert_once(log: str, tag: str, block_inside: bool) -> str:
    note(log, "begin")
    insert_row(log, tag, block_inside)
    note(log, "end")
    return tag


@transaction
def insert_gated(log: str, tag: str, gates: str) -> str:
    """Insert, then hold the transaction open until the test creates ``gates/release-N`` for
    this (N-th) execution of the step."""
    sql_session().execute(
        text(f"INSERT INTO {APP_TABLE} (tag, created_at) VALUES (:tag, :t)"),
        {"tag": tag, "t": time.time()},
    )
    append(log, f"inserted {tag}")
    attempt = read_lines(log).count(f"inserted {tag}")
    while not os.path.exists(os.path.join(gates, f"release-{attempt}")):
        time.sleep(0.01)  # the gate is a file the test creates
    return f"{tag} by attempt {attempt}"


@workflow
def insert_gated_once(log: str, tag: str, gates: str) -> str:
    return insert_gated(log, tag, gates)


# -- durable sleep and messages -------------------------------------------------------------


@step
def clock(log: str, label: str) -> float:
    t = time.time()
    append(log, f"{label} {t!r}")
    return t


@workflow
def sleeper(log: str, seconds: float) -> float:
    clock(log, "before")
    sleep(seconds)
    return clock(log, "woke")


@workflow
def receiver(log: str, count: int, topic: str) -> list:
    note(log, "ready")
    return [recv(topic, timeout=60) for _ in range(count)]


@workflow
def times_out(log: str, seconds: float) -> list:
    note(log, "ready")
    got = recv("never", timeout=seconds)
    return [got, clock(log, "timed-out")]


# -- queue workloads -------------------------------------------------------------------------


@step
def busy(seconds: float) -> list[float]:
    start = time.time()
    time.sleep(seconds)  # the work itself: holds a concurrency slot for this long
    return [start, time.time()]


@workflow
def timed(seconds: float) -> list[float]:
    return busy(seconds)


@workflow
def prioritized(log: str, priority: int) -> int:
    note(log, f"run {priority}")
    return priority


@workflow
def fleet_item(log: str, tag: str) -> str:
    insert_row(log, tag, False)
    busy(0.05)
    return tag


# -- clock skew (tests/multiprocess/test_clock_skew.py) -------------------------------------

skew_queue = Queue("clock_skew", worker_concurrency=20)
skew_rate_queue = Queue("clock_skew_rate", rate_limit=(5, 5.0))


def real_time() -> float:
    """The host's real wall clock: a worker's ``--clock-skew`` (which shifts ``time.time``)
    does not move it, so the test can compare when things really happened."""
    return time.clock_gettime(time.CLOCK_REALTIME)


@step
def logged_busy(log: str, tag: str, seconds: float) -> str:
    append(log, f"start {tag} {real_time()!r}")
    time.sleep(seconds)  # the work itself
    append(log, f"end {tag} {real_time()!r}")
    return tag


@workflow
def skew_item(log: str, tag: str, seconds: float) -> str:
    return logged_busy(log, tag, seconds)


# -- outages past the lease (tests/lifecycle/test_outage_past_lease.py) ----------------------

lease_queue = Queue("lease_outage", worker_concurrency=7)


@workflow
def stepping(log: str, prefix: str, count: int, work: float) -> int:
    for i in range(count):
        logged_busy(log, f"{prefix}.{i}", work)
    return count


# -- a schedule's runs: which process ran which tick ---------------------------------------------


@step
def record_tick(log: str, tick: str) -> str:
    append(log, tick)
    return tick


@workflow
def scheduled_tick(scheduled_at, started_at, log: str) -> str:
    return record_tick(log, scheduled_at.isoformat())


# -- the deferred checkpoint of a step the body goes on after ----------------------------------


@step
def effect_once(log: str) -> str:
    append(log, "effect")
    return "done"


@workflow
def step_then_linger(log: str) -> str:
    value = effect_once(log)
    note(log, "lingering")  # code outside steps that takes a while: here, until killed
    wait_to_be_killed()
    return value
