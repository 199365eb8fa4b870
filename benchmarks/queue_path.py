"""``python -m benchmarks.queue_path``: the queue path alone, rates and statements per workflow.

On a fresh system database: enqueue ``--count`` one-step workflows one by one
(``Queue.enqueue``), then the same number with ``Queue.enqueue_many`` (batches of
``--batch``), with no worker serving the queue; then one engine drains the 2 x ``--count``
backlog. Prints enqueue/s both ways, drain wf/s (first start to last finish, from the
database's timestamps) and the statements the store ran per workflow for each phase, a count
that the machine's load does not blur.

    python -m benchmarks.queue_path --backend postgres --count 5000
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from durable_core import Engine, Queue, step, workflow
from durable_core.store import SQLStore

path_queue = Queue("queue_path")


@step
def path_step(i: int) -> int:
    return i


@workflow(name="queue_path_one")
def path_one(i: int) -> int:
    return path_step(i)


@contextmanager
def counting(store_class: type[SQLStore]) -> Iterator[list[int]]:
    """Counts the statements every store of ``store_class`` runs inside the block."""
    count = [0]
    lock = threading.Lock()
    original = store_class.execute

    def execute(self: SQLStore, conn: Any, sql: str, params: Any = ()) -> Any:
        with lock:
            count[0] += 1
        return original(self, conn, sql, params)

    store_class.execute = execute  # type: ignore[method-assign]
    try:
        yield count
    finally:
        store_class.execute = original  # type: ignore[method-assign]


def run(url: str, count: int, batch: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with Engine(url, executor_id="queue-path-enqueue", queues=[], run_scheduler=False) as engine:
        store_class = type(engine.store)
        with counting(store_class) as n:
            t0 = time.perf_counter()
            for i in range(count):
                path_queue.enqueue(path_one, i)
            out["enqueue one by one, /s"] = count / (time.perf_counter() - t0)
        out["enqueue one by one, statements/wf"] = n[0] / count
        with counting(store_class) as n:
            t0 = time.perf_counter()
            for start in range(0, count, batch):
                path_queue.enqueue_many(path_one, [(i,) for i in range(start, start + batch)])
            out[f"enqueue_many ({batch}), /s"] = count / (time.perf_counter() - t0)
        out[f"enqueue_many ({batch}), statements/wf"] = n[0] / count
    total = 2 * count
    done_sql = (
        "SELECT COUNT(*), MIN(started_at), MAX(finished_at) FROM durable_workflows "
        "WHERE name = 'queue_path_one' AND status = 'SUCCESS'"
    )
    engine = Engine(url, executor_id="queue-path-drain", queues=["queue_path"], run_scheduler=False)
    with counting(store_class) as n:
        engine.launch()
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                done, first, last = engine.store.fetchone(done_sql)
                if done >= total:
                    break
                time.sleep(0.1)
        finally:
            engine.shutdown(timeout=10)
    out["drain, wf/s"] = total / ((last - first) / 1000)
    # Includes the poll above (about one statement per 100 ms): negligible per workflow.
    out["drain, statements/wf"] = n[0] / total
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.queue_path", description=__doc__)
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "postgres":
            from benchmarks.databases import drop_postgres, recreate_postgres

            url = recreate_postgres("perf_queue_path")
        else:
            url = f"sqlite:///{tmp}/queue_path.sqlite3"
        try:
            results = run(url, args.count, args.batch)
        finally:
            if args.backend == "postgres":
                drop_postgres("perf_queue_path")
    for label, value in results.items():
        print(f"[{args.backend}] {label:<38} {value:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
