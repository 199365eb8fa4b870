"""``python -m benchmarks.queue_cpu``: CPU time per queued workflow, client and server.

The side-by-side ``queue`` workload in one process, measured in CPU time instead of wall time:
one engine serves the queue while the main thread enqueues ``--count`` one-step workflows one
by one; then ``--count`` more are enqueued by an engine that serves nothing (the enqueue path
alone); then the drain alone: ``--count`` more enqueued (``enqueue_many``) while the serving
engine has the queue paused, drained by it once resumed (``benchmarks.queue_path``'s drain). For each phase: this process's CPU time (``time.process_time``: every thread, the
GIL-bound part of the drain), the CPU time of the PostgreSQL backends serving this engine
(their pool connections and their LISTEN connection, read from ``/proc``; the server must be
on this machine) and the statements the store ran, each per workflow. CPU time is what a
loaded machine blurs least (wall time there is mostly waiting for a core); compare builds by
these numbers, measured one right after the other.

    python -m benchmarks.queue_cpu --count 3000
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from typing import Any

from benchmarks.queue_path import counting
from durable_core import Engine, Queue, set_default_engine, step, workflow

cpu_queue = Queue("queue_cpu")
backlog_queue = Queue("queue_cpu_backlog")  # the drain phase's own: no earlier phase's rows
_done = threading.Semaphore(0)


@step
def cpu_step(i: int) -> int:
    return i


@workflow(name="queue_cpu_one")
def cpu_one(i: int) -> int:
    result = cpu_step(i)
    _done.release()
    return result


_TICKS = os.sysconf("SC_CLK_TCK")


def _backend_cpu(engine: Engine) -> dict[int, float]:
    """CPU seconds of every server backend whose application_name is this engine's."""
    rows = engine.store.fetchall(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
        (f"durable {engine.executor_id}"[:63],),
    )
    out = {}
    for (pid,) in rows:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out


def _server_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _phase(engine: Engine, count: int, drain: bool, enqueue: bool = True) -> dict[str, float]:
    store_class = type(engine.store)
    server0 = _backend_cpu(engine)
    cpu0, t0 = time.process_time(), time.perf_counter()
    with counting(store_class) as n:
        if enqueue:
            for i in range(count):
                cpu_queue.enqueue(cpu_one, i)
        else:
            engine.resume_queue(backlog_queue.name)
        if drain:
            for _ in range(count):
                if not _done.acquire(timeout=120):
                    raise RuntimeError("the drain did not finish")
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    time.sleep(0.3)  # the server's last commits and notifications
    server = _server_delta(server0, _backend_cpu(engine))
    return {
        "wf/s (wall, machine load included)": count / wall,
        "client CPU us/wf": cpu / count * 1e6,
        "server CPU us/wf": server / count * 1e6,
        "statements/wf": n[0] / count,
    }


def run(url: str, count: int) -> dict[str, dict[str, float]]:
    results = {}
    options: dict[str, Any] = {"run_scheduler": False}
    with Engine(url, executor_id="queue-cpu-drain", queues=["queue_cpu"], **options) as engine:
        set_default_engine(engine)
        for i in range(min(200, count)):  # warm up: connections, prepared statements
            cpu_queue.enqueue(cpu_one, -i)
        for _ in range(min(200, count)):
            _done.acquire(timeout=60)
        results["enqueue + drain, one engine"] = _phase(engine, count, drain=True)
    with Engine(url, executor_id="queue-cpu-enqueue", queues=[], **options) as engine:
        set_default_engine(engine)
        for i in range(min(200, count)):
            cpu_queue.enqueue(cpu_one, -i)
        results["enqueue only"] = _phase(engine, count, drain=False)
    backlog = backlog_queue.name
    with Engine(url, executor_id="queue-cpu-backlog", queues=[backlog], **options) as engine:
        set_default_engine(engine)
        for i in range(min(200, count)):  # warm up
            backlog_queue.enqueue(cpu_one, -i)
        for _ in range(min(200, count)):
            _done.acquire(timeout=60)
        engine.pause_queue(backlog)
        for start in range(0, count, 1000):
            backlog_queue.enqueue_many(
                cpu_one, [(i,) for i in range(start, min(start + 1000, count))]
            )
        results["drain of a backlog"] = _phase(engine, count, drain=True, enqueue=False)
    set_default_engine(None)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.queue_cpu", description=__doc__)
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args(argv)
    from benchmarks.databases import drop_postgres, recreate_postgres

    url = recreate_postgres("perf_queue_cpu")
    try:
        results = run(url, args.count)
    finally:
        drop_postgres("perf_queue_cpu")
    load = os.getloadavg()
    print(f"count {args.count}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    for phase, values in results.items():
        for label, value in values.items():
            print(f"{phase:<30} {label:<36} {value:10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
