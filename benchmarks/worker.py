"""One measurement in a fresh process: ``python -m benchmarks.worker --system S --backend B
--database-url URL --workload W --out FILE [--quick]``.

A fresh process per (system, backend, workload) keeps DBOS's process-global state away
from our engine, gives every measurement the same cold start, and lets the runner kill a
hung measurement without losing the others. The result is written as JSON to ``--out``
(stdout stays free for the libraries' own logging).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from typing import Any

from benchmarks import floor
from benchmarks.config import BACKENDS, WORKLOADS, sizes_for
from benchmarks.stats import Metric

#: Seconds a system may take to shut down before the worker gives up and exits anyway.
SHUTDOWN_TIMEOUT = 30.0


def _sqlite_path(url: str) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ValueError(f"not an sqlite URL: {url!r}")
    return url[len(prefix) :]


def _measure_floor(backend: str, url: str, n: int) -> tuple[str, list[Metric]]:
    if backend == "postgres":
        import psycopg

        return f"psycopg {psycopg.__version__}", floor.measure_postgres(url, n)
    import sqlite3

    return f"sqlite {sqlite3.sqlite_version}", floor.measure_sqlite(_sqlite_path(url), n)


def _measure_system(
    name: str, url: str, workload: str, quick: bool
) -> tuple[str, list[Metric], list[str]]:
    from benchmarks.systems import load
    from benchmarks.workloads import WORKLOADS as RUNNERS

    warnings: list[str] = []
    if workload == "recovery":  # launches the system itself, after a crash it provokes
        from benchmarks.workloads import recovery

        return load(name).version(), recovery(name, url, sizes_for(quick)), warnings
    system = load(name)
    system.launch(url)
    try:
        system.warm_up()
        metrics = RUNNERS[workload](system, sizes_for(quick))
    finally:
        # Shut down in a daemon thread so a hang costs SHUTDOWN_TIMEOUT, not the whole run.
        stopper = threading.Thread(target=system.shutdown, daemon=True)
        began = time.perf_counter()
        stopper.start()
        stopper.join(SHUTDOWN_TIMEOUT)
        took = time.perf_counter() - began
        if stopper.is_alive():
            warnings.append(f"shutdown did not finish within {SHUTDOWN_TIMEOUT}s")
        elif took > 2.0:
            warnings.append(f"shutdown took {took:.1f}s")
    return system.version(), metrics, warnings


def run(args: argparse.Namespace) -> dict[str, Any]:
    record: dict[str, Any] = {
        "system": args.system,
        "backend": args.backend,
        "workload": args.workload,
        "metrics": [],
        "version": None,
        "warnings": [],
        "error": None,
    }
    started = time.perf_counter()
    try:
        if args.system == "floor":
            record["version"], metrics = _measure_floor(
                args.backend, args.database_url, sizes_for(args.quick).floor_inserts
            )
        else:
            record["version"], metrics, record["warnings"] = _measure_system(
                args.system, args.database_url, args.workload, args.quick
            )
        record["metrics"] = [m.to_json() for m in metrics]
    except BaseException as exc:  # every failure becomes a table cell
        record["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    record["seconds"] = round(time.perf_counter() - started, 2)
    return record


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker", description=__doc__)
    parser.add_argument("--system", required=True, choices=["durable", "dbos", "floor"])
    parser.add_argument("--backend", required=True, choices=BACKENDS)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--workload", required=True, choices=[*WORKLOADS, "floor"])
    parser.add_argument("--out", required=True, help="file to write the JSON record to")
    parser.add_argument("--quick", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    record = run(args)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=2)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: a library thread that ignores shutdown must not hang us.
    os._exit(1 if record["error"] else 0)


if __name__ == "__main__":
    main()
