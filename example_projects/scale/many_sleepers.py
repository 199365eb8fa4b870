"""Ten thousand workflows sleeping at once in one process, with bounded threads and memory.

    python example_projects/scale/many_sleepers.py [--count 10000] [--seconds 5] [--database-url URL]

Each sync workflow sleeps durably; a sleep longer than the engine's suspend threshold gives
back its thread (the workflow is parked on a timer and replayed when it fires), so the number
of threads stays at the pool size however many workflows wait.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import threading
import time

from durable_core import Engine, sleep, step, workflow


@step
def stamp(i: int) -> int:
    return i


@workflow
def nap(i: int, seconds: float) -> int:
    stamp(i)
    sleep(seconds)
    return stamp(i)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/sleepers.sqlite3"
    with Engine(url, executor_id="sleepers", max_workers=32) as engine:
        base_rss = rss_mb()
        started = time.time()
        handles = [engine.start_workflow(nap, i, args.seconds) for i in range(args.count)]
        peak_parked, peak_threads, peak_rss = 0, 0, 0.0
        while time.time() - started < args.seconds + 60:
            parked = len(engine.parking.parked)
            peak_parked = max(peak_parked, parked)
            peak_threads = max(peak_threads, threading.active_count())
            peak_rss = max(peak_rss, rss_mb())
            done = engine.list_workflows(status="SUCCESS", limit=None)
            if len(done) >= args.count:
                break
            time.sleep(0.25)
        elapsed = time.time() - started
        results = [h.result(timeout=60) for h in handles]
        assert results == list(range(args.count))
        print(f"database               {engine.url.redacted}")
        print(f"workflows              {args.count} each sleeping {args.seconds}s")
        print(f"peak parked at once    {peak_parked}")
        print(f"peak threads           {peak_threads} (pool size {engine.max_workers})")
        print(f"RSS before / peak      {base_rss:.0f} MB / {peak_rss:.0f} MB")
        print(
            f"all finished after     {elapsed:.1f}s (cpu {os.times().user + os.times().system:.1f}s)"
        )


if __name__ == "__main__":
    main()
