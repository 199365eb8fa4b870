"""``python -m benchmarks.fairness``: a small tenant's wait behind a big tenant's backlog.

PostgreSQL, ``--workers`` worker processes (default 3). One key holds ``--big`` items (default
50,000) and ``--small-keys`` keys (default 100) hold ``--per-small`` items each (default 10),
enqueued after the big backlog: the worst case for a FIFO queue. Each item is a one-step
workflow. For each mode (a partitioned queue, then the same backlog on a plain FIFO queue)
the script builds a fresh schema, enqueues everything with ``enqueue_many``, starts the
workers, and waits until every small-key item has started. A small item's start delay is its
``started_at`` minus the first start of the run (when the workers began claiming); reported
are its p50, p99 and max, and how many big-key items had started by then.

    python -m benchmarks.fairness --big 50000            # the issue's sizes
    python -m benchmarks.fairness --big 10000 --modes partitioned fifo

``BENCH_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``) names the server;
the script creates and drops the database ``partitions_bench_fairness`` there.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from durable_core import Engine, Queue, step, workflow

fair_queue = Queue("fairness-partitioned", partitioned=True)
fifo_queue = Queue("fairness-fifo")
QUEUES = {"partitioned": fair_queue, "fifo": fifo_queue}
DATABASE = "partitions_bench_fairness"


@step
def touch(i: int) -> int:
    return i


@workflow(name="fairness_item")
def item(i: int) -> int:
    return touch(i)


def _server() -> str:
    return os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(_server(), autocommit=True) as conn:
        conn.execute(sql)


def _url() -> str:
    base = _server().rsplit("/", 1)[0]
    return f"{base}/{DATABASE}"


def serve(url: str, queue: str) -> None:
    """One worker process: serve ``queue`` until SIGTERM."""
    engine = Engine(url, queues=[queue], run_scheduler=False)
    engine.launch()
    print("ready", flush=True)
    stopped = False

    def stop(*_: Any) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, stop)
    while not stopped:
        time.sleep(0.2)
    engine.shutdown(timeout=10)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    _admin(f"DROP DATABASE IF EXISTS {DATABASE}")
    _admin(f"CREATE DATABASE {DATABASE}")
    url = _url()
    queue = QUEUES[mode]
    enqueuer = Engine(url, queues=[], run_scheduler=False, migrate=True)
    enqueuer.launch()
    try:
        partitioned = mode == "partitioned"

        def put(items: list[tuple[int]], key_of: Any) -> list[str]:
            ids: list[str] = []
            for start in range(0, len(items), 5000):
                chunk = items[start : start + 5000]
                keys = [key_of(i) for (i,) in chunk] if partitioned else None
                ids.extend(
                    h.workflow_id for h in queue.enqueue_many(item, chunk, partition_keys=keys)
                )
            return ids

        put([(i,) for i in range(args.big)], lambda i: "big")
        small_ids = put(
            [(args.big + i,) for i in range(args.small_keys * args.per_small)],
            lambda i: f"small-{(i - args.big) // args.per_small:03}",
        )
        enqueuer.store.run("ANALYZE durable_workflows")
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.fairness", "--serve", queue.name],
                stdout=subprocess.PIPE,
                env={**os.environ, "FAIRNESS_URL": url},
            )
            for _ in range(args.workers)
        ]
        try:
            for w in workers:
                assert w.stdout is not None
                w.stdout.readline()
            began = time.monotonic()
            ids = small_ids
            while True:
                started = enqueuer.store.fetchone(
                    "SELECT COUNT(*) FROM durable_workflows WHERE workflow_id = ANY(%s) "
                    "AND started_at IS NOT NULL",
                    (ids,),
                )[0]
                if started == len(ids) or time.monotonic() - began > args.timeout:
                    break
                time.sleep(0.5)
            first = enqueuer.store.fetchone(
                "SELECT MIN(started_at) FROM durable_workflows WHERE queue_name = %s",
                (queue.name,),
            )[0]
            rows = enqueuer.store.fetchall(
                "SELECT started_at FROM durable_workflows WHERE workflow_id = ANY(%s) "
                "AND started_at IS NOT NULL",
                (ids,),
            )
            last_small = max(r[0] for r in rows)
            big_before = enqueuer.store.fetchone(
                "SELECT COUNT(*) FROM durable_workflows WHERE queue_name = %s "
                "AND started_at IS NOT NULL AND started_at <= %s AND NOT workflow_id = ANY(%s)",
                (queue.name, last_small, ids),
            )[0]
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                try:
                    w.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    w.kill()
        delays = [(r[0] - first) / 1000 for r in rows]
        return {
            "mode": mode,
            "small_items": len(ids),
            "small_started": len(rows),
            "p50_s": round(_percentile(delays, 0.50), 3),
            "p99_s": round(_percentile(delays, 0.99), 3),
            "max_s": round(max(delays), 3),
            "big_items_started_before_the_last_small": int(big_before),
        }
    finally:
        enqueuer.shutdown(timeout=10)
        _admin(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=50_000)
    parser.add_argument("--small-keys", type=int, default=100)
    parser.add_argument("--per-small", type=int, default=10)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--modes", nargs="+", default=["partitioned", "fifo"])
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(os.environ["FAIRNESS_URL"], args.serve)
        return
    results = [run_mode(mode, args) for mode in args.modes]
    print(json.dumps({"sizes": vars(args) | {"serve": None}, "results": results}, indent=2))
    for r in results:
        print(
            f"{r['mode']:>12}: small-key start delay p50 {r['p50_s']} s, p99 {r['p99_s']} s, "
            f"max {r['max_s']} s ({r['small_started']}/{r['small_items']} started; "
            f"{r['big_items_started_before_the_last_small']} big-key items before the last)"
        )


if __name__ == "__main__":
    main()
