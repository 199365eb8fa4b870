"""``python -m benchmarks.parking``: how long a burst of waiting sync workflows takes to park.

Starts ``--count`` workflows that each run one step and then wait (``recv`` with a long
timeout, or ``sleep``), and reports the time until all of them are parked (holding no thread),
then wakes them (a message each, or the sleep ends) and reports the time until all finished.

    python -m benchmarks.parking --count 10000 --wait recv
    python -m benchmarks.parking --count 10000 --wait sleep --database-url postgresql://…
"""

from __future__ import annotations

import argparse
import tempfile
import time

from durable_core import Engine, recv, send, sleep, step, workflow


@step
def stamp(i: int) -> int:
    return i


@workflow
def parked_recv(i: int) -> int:
    stamp(i)
    recv("go", timeout=600)
    return i


@workflow
def parked_sleep(i: int, seconds: float) -> int:
    stamp(i)
    sleep(seconds)
    return i


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parking", description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--wait", choices=["recv", "sleep"], default="recv")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--max-workers", type=int, default=64)
    args = parser.parse_args(argv)
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/parking.sqlite3"
    with Engine(url, executor_id="parking-bench", max_workers=args.max_workers) as engine:
        sleep_for = 30.0 + args.count / 200  # long enough that every sleeper parks first
        started = time.perf_counter()
        if args.wait == "recv":
            handles = [engine.start_workflow(parked_recv, i) for i in range(args.count)]
        else:
            handles = [engine.start_workflow(parked_sleep, i, sleep_for) for i in range(args.count)]
        submitted = time.perf_counter() - started
        while len(engine.parking.parked) < args.count:
            time.sleep(0.05)
        all_parked = time.perf_counter() - started
        woke = time.perf_counter()
        if args.wait == "recv":
            for h in handles:
                send(h.workflow_id, "x", topic="go")
        results = [h.result(timeout=600) for h in handles]
        finished = time.perf_counter() - (woke if args.wait == "recv" else started)
        assert results == list(range(args.count))
    print(f"database          {engine.url.redacted}")
    print(f"workflows         {args.count} waiting in {args.wait} (max_workers {args.max_workers})")
    print(f"started in        {submitted:.1f}s")
    print(f"all parked after  {all_parked:.1f}s")
    label = "woken and done in" if args.wait == "recv" else "all done after   "
    print(
        f"{label} {finished:.1f}s" + ("" if args.wait == "recv" else f" (sleep {sleep_for:.0f}s)")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
