"""``python -m benchmarks.connections``: the PostgreSQL connections of default workers.

Starts ``--workers`` processes of ``durable worker`` (default settings) on a fresh database,
enqueues ``--count`` three-step workflows from a Client, samples ``pg_stat_activity`` every
0.1 s while they drain, and prints the peak number of connections to the database (all
clients) and per engine; then, with ``--idle-wait``, the count after the workers sat idle.

    python -m benchmarks.connections --workers 3 --count 6000 --idle-wait 75
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections import Counter

import psycopg

from benchmarks.databases import drop_postgres, recreate_postgres
from durable_core import Client
from durable_core.store import open_store

DB = "perf_connections"


def sample(url: str) -> Counter:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT application_name, COUNT(*) FROM pg_stat_activity WHERE datname = %s "
            "AND pid <> pg_backend_pid() GROUP BY application_name",
            (DB,),
        ).fetchall()
    return Counter({name or "(none)": n for name, n in rows})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.connections", description=__doc__)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--count", type=int, default=6000)
    parser.add_argument("--idle-wait", type=float, default=0.0)
    args = parser.parse_args(argv)
    url = recreate_postgres(DB)
    env = {**os.environ, "DURABLE_DATABASE_URL": url}
    store = open_store(url, pool_size=1)
    store.migrate()
    store.close()
    client = Client(url)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "durable_core",
                "worker",
                "--app",
                "benchmarks.apps.budget",
                "--executor-id",
                f"budget-worker-{i}",
                "--log-level",
                "WARNING",
            ],
            env=env,
        )  # fmt: skip
        for i in range(args.workers)
    ]
    peak_total, peak_by_app = 0, Counter()
    stop = threading.Event()

    def sampler() -> None:
        nonlocal peak_total
        while not stop.is_set():
            counts = sample(url)
            peak_total = max(peak_total, sum(counts.values()))
            for name, n in counts.items():
                peak_by_app[name] = max(peak_by_app[name], n)
            time.sleep(0.1)

    thread = threading.Thread(target=sampler, daemon=True)
    try:
        time.sleep(3)  # the workers launch
        thread.start()
        started = time.perf_counter()
        handles = [client.enqueue("budget", "budget_three", i) for i in range(args.count)]
        for h in handles:
            h.result(timeout=600)
        elapsed = time.perf_counter() - started
        stop.set()
        thread.join()
        print(
            f"{args.workers} default workers, {args.count} three-step workflows in {elapsed:.1f}s"
        )
        print(f"peak connections to the database (all clients): {peak_total}")
        for name, n in sorted(peak_by_app.items()):
            print(f"  peak {n:3d}  {name}")
        if args.idle_wait:
            time.sleep(args.idle_wait)
            counts = sample(url)
            print(f"after {args.idle_wait:.0f}s idle: {sum(counts.values())} connections")
            for name, n in sorted(counts.items()):
                print(f"  {n:3d}  {name}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
        client.close()
        drop_postgres(DB)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
