"""``python -m benchmarks.step_cost``: per-step cost as a multiple of the floor, in one process.

Alternates rounds of a ``--steps``-step workflow and of as many floor ``INSERT`` + ``COMMIT``
statements (psycopg in autocommit, one column) on one fresh PostgreSQL database, so both see
the same machine at the same minutes, and prints each side's median per operation and the
median of the per-round ratios. Run it on two builds one after the other (``PYTHONPATH`` at
each checkout) to compare them: the ratio moves far less than the absolute figures do when the
server's fsync time drifts.

    python -m benchmarks.step_cost --rounds 7 --steps 1000
"""

from __future__ import annotations

import argparse
import statistics
import time

import durable_core
from benchmarks.databases import drop_postgres, recreate_postgres
from durable_core import Engine, step, workflow


@step
def cost_step(i: int) -> int:
    return i


@workflow(name="bench_step_cost")
def cost_steps(n: int) -> int:
    for i in range(n):
        cost_step(i)
    return n


def main(argv: list[str] | None = None) -> int:
    import psycopg

    parser = argparse.ArgumentParser(prog="python -m benchmarks.step_cost", description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args(argv)
    name = "bench_step_cost"
    url = recreate_postgres(name)
    engine = Engine(url, executor_id="bench-step-cost", queues=[], run_scheduler=False)
    engine.launch()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_floor (id BIGSERIAL PRIMARY KEY, payload TEXT)")

            def floor(n: int) -> None:
                for _ in range(n):
                    conn.execute("INSERT INTO bench_floor (payload) VALUES (%s)", ("row",))

            cost_steps(100)  # warm up: connections, prepared statements
            floor(100)
            floors, steps = [], []
            for _ in range(args.rounds):
                started = time.perf_counter()
                floor(args.steps)
                floors.append((time.perf_counter() - started) / args.steps * 1e6)
                started = time.perf_counter()
                cost_steps(args.steps)
                steps.append((time.perf_counter() - started) / args.steps * 1e6)
    finally:
        engine.shutdown(timeout=5)
        drop_postgres(name)
    ratios = [s / f for f, s in zip(floors, steps, strict=True)]
    print(f"build: {durable_core.__file__}")
    print(f"floor, median of rounds: {statistics.median(floors):.0f} µs")
    print(f"per step, median of rounds: {statistics.median(steps):.0f} µs")
    print(f"per step / floor, median of per-round ratios: {statistics.median(ratios):.2f}x")
    print(f"per-round ratios: {', '.join(f'{r:.2f}' for r in ratios)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
