"""``python -m benchmarks.queue_path``: the queue path alone, rates and statements per workflow.

On a fresh system database: enqueue ``--count`` one-step workflows one by one
(``Queue.enqueue``) from one thread, then ``--count`` one by one from each number of
concurrent callers in ``--threads`` (a web server's request threads sharing one engine: on
PostgreSQL their commits share WAL flushes, so together they pass one thread's INSERT + COMMIT
floor), then ``--count`` with ``Queue.enqueue_many`` (batches of ``--batch``), with no worker
serving the queue; then one engine drains the whole backlog. Prints enqueue/s each way, drain
wf/s (first start to last finish, from the database's timestamps) and the statements the store
ran per workflow for each phase, a count that the machine's load does not blur.

    python -m benchmarks.queue_path --backend postgres --count 5000 --threads 4,8
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


def enqueue_from_threads(count: int, threads: int) -> float:
    """Enqueue/s of ``count`` one-by-one enqueues split over ``threads`` concurrent callers,
    from the moment all are ready to the last one's return."""
    per = count // threads
    ready = threading.Barrier(threads + 1)
    failed: list[BaseException] = []

    def caller(k: int) -> None:
        ready.wait()
        try:
            for i in range(per):
                path_queue.enqueue(path_one, k * per + i)
        except BaseException as exc:  # reported below, not lost in the thread
            failed.append(exc)

    workers = [threading.Thread(target=caller, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    ready.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    if failed:
        raise failed[0]
    return per * threads / elapsed


def run(
    url: str, count: int, batch: int, threads: tuple[int, ...] = (), pool_size: int | None = None
) -> dict[str, float]:
    out: dict[str, float] = {}
    total = count
    with Engine(
        url, executor_id="queue-path-enqueue", queues=[], run_scheduler=False, pool_size=pool_size
    ) as engine:
        store_class = type(engine.store)
        with counting(store_class) as n:
            t0 = time.perf_counter()
            for i in range(count):
                path_queue.enqueue(path_one, i)
            out["enqueue one by one, /s"] = count / (time.perf_counter() - t0)
        out["enqueue one by one, statements/wf"] = n[0] / count
        for k in threads:
            out[f"enqueue one by one, {k} threads, /s"] = enqueue_from_threads(count, k)
            total += count // k * k
        out["engine pool size"] = engine.pool_size
        with counting(store_class) as n:
            t0 = time.perf_counter()
            for start in range(0, count, batch):
                path_queue.enqueue_many(path_one, [(i,) for i in range(start, start + batch)])
            out[f"enqueue_many ({batch}), /s"] = count / (time.perf_counter() - t0)
        out[f"enqueue_many ({batch}), statements/wf"] = n[0] / count
    total += count
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
    parser.add_argument(
        "--threads", default="4,8", help="concurrent one-by-one enqueuers, comma-separated"
    )
    parser.add_argument(
        "--pool-size", type=int, default=None, help="the engine's pool (default: its own)"
    )
    parser.add_argument("--database", default="perf_queue_path", help="PostgreSQL database")
    args = parser.parse_args(argv)
    threads = tuple(int(k) for k in args.threads.split(",") if k.strip())
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "postgres":
            from benchmarks.databases import drop_postgres, recreate_postgres

            url = recreate_postgres(args.database)
        else:
            url = f"sqlite:///{tmp}/queue_path.sqlite3"
        try:
            results = run(url, args.count, args.batch, threads, args.pool_size)
        finally:
            if args.backend == "postgres":
                drop_postgres(args.database)
    for label, value in results.items():
        print(f"[{args.backend}] {label:<38} {value:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
