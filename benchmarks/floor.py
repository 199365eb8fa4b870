"""The floor: one single-row INSERT + COMMIT round trip on the same database.

A durable step cannot be cheaper than making one row durable, so every result is also
shown as a multiple of this. It is measured from Python with the same drivers the
libraries use (psycopg 3 in autocommit; the stdlib ``sqlite3``), so driver overhead is in
the floor too.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from benchmarks.stats import Metric, latency_metrics

#: Pragmas of durable_core's SQLite store (WAL, synchronous=NORMAL): the floor is measured
#: under the durability settings our own checkpoints get. DBOS 3.4.0 leaves SQLite at its
#: defaults (rollback journal, synchronous=FULL), which is documented in the README.
#: SQLite's own defaults, which DBOS keeps: shown as a second floor row for context.
SQLITE_DEFAULT_PRAGMAS = ("PRAGMA journal_mode=DELETE", "PRAGMA synchronous=FULL")

#: Name of the floor metric that every ratio divides by.
FLOOR_METRIC = "INSERT+COMMIT median"

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=5000",
)

_CREATE = "CREATE TABLE IF NOT EXISTS bench_floor (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)"


def _time_inserts(execute_insert: Callable[[int], None], n: int) -> list[float]:
    samples: list[float] = []
    for i in range(n):
        started = time.perf_counter()
        execute_insert(i)
        samples.append(time.perf_counter() - started)
    return samples


def measure_postgres(url: str, n: int) -> list[Metric]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_CREATE.replace("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY"))
        conn.execute("TRUNCATE bench_floor")

        def insert(i: int) -> None:
            # One statement in autocommit = one INSERT + COMMIT round trip.
            conn.execute("INSERT INTO bench_floor (payload) VALUES (%s)", (f"row {i}",))

        _time_inserts(insert, min(50, n))  # warm up: prepared plan, connection buffers
        samples = _time_inserts(insert, n)
    return latency_metrics("floor", "INSERT+COMMIT", samples, "us")


def measure_sqlite(path: str, n: int) -> list[Metric]:
    """The floor under our store's pragmas, then (on a second file) under SQLite defaults."""
    metrics = latency_metrics(
        "floor", "INSERT+COMMIT", _sqlite_samples(path, n, SQLITE_PRAGMAS), "us"
    )
    default_samples = _sqlite_samples(path + ".defaults", n, SQLITE_DEFAULT_PRAGMAS)
    label = "INSERT+COMMIT, SQLite defaults"
    return metrics + latency_metrics("floor", label, default_samples, "us")


def _sqlite_samples(path: str, n: int, pragmas: tuple[str, ...]) -> list[float]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in pragmas:
            conn.execute(pragma)
        conn.execute(_CREATE)

        def insert(i: int) -> None:
            conn.execute("BEGIN")
            conn.execute("INSERT INTO bench_floor (payload) VALUES (?)", (f"row {i}",))
            conn.execute("COMMIT")

        _time_inserts(insert, min(50, n))
        return _time_inserts(insert, n)
    finally:
        conn.close()
