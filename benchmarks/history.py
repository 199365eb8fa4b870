"""``python -m benchmarks.history``: every hot statement at 0 and at 1M finished workflows.

Builds a system database with an in-flight population (a 100k ENQUEUED backlog, delayed
entries, parked PENDING workflows with deadlines), measures each hot store operation, then adds
1M finished workflows (one step each) and measures again. For each operation it prints the
median and max time of its calls at both sizes, the growth ratio, and the plan of every
statement the operation ran (PostgreSQL: ``EXPLAIN ANALYZE`` inside a rolled-back transaction;
SQLite: ``EXPLAIN QUERY PLAN``). The statements are captured from the store itself, so the
plans are those of the SQL the engine runs. Last, ``garbage_collect`` deletes the history in
batches while a thread checkpoints steps, and the checkpoint latency during it is reported.

    python -m benchmarks.history --backend postgres --history 1000000 --backlog 100000
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from durable_core import Engine, step, workflow
from durable_core.store import QueueClaim, SQLStore, now_ms, open_store

NAME = "bench_noop"
QUEUE = "backlog"
VERSION = "v1"
LIVE = "live-executor"
PENDING = 20_000  # parked workflows: recovery and adoption scans walk these, not history
DELAYED = 1_000


def _series(dialect: str, n: int, select: str) -> str:
    """``INSERT … SELECT`` over g = 1..n on either backend."""
    if dialect == "postgresql":
        return f"{select} FROM generate_series(1, {n}) AS s(g)"
    series = f"WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {n})"  # noqa: S608
    return f"{series} {select} FROM s"


_COLUMNS = (
    "workflow_id, name, status, queue_name, inputs, output, executor_id, run_token, "
    "application_version, priority, not_before, timeout_ms, deadline, created_at, updated_at, "
    "started_at, finished_at"
)


def _bulk(store: SQLStore, sql: str) -> None:
    with store.transaction() as conn:
        store.execute(conn, sql)


def build_inflight(store: SQLStore, backlog: int, base: int) -> None:
    d = store.dialect
    cat = "||"
    _bulk(
        store,
        _series(
            d,
            backlog,
            f"INSERT INTO durable_workflows ({_COLUMNS}) SELECT 'q-' {cat} g, '{NAME}', "
            f"'ENQUEUED', '{QUEUE}', '[]', NULL, NULL, NULL, '{VERSION}', 0, NULL, NULL, NULL, "
            f"{base} + g, {base} + g, NULL, NULL",
        ),
    )
    far = base + 10**9
    _bulk(
        store,
        _series(
            d,
            DELAYED,
            f"INSERT INTO durable_workflows ({_COLUMNS}) SELECT 'd-' {cat} g, '{NAME}', "
            f"'ENQUEUED', '{QUEUE}', '[]', NULL, NULL, NULL, '{VERSION}', 0, {far} + g, NULL, "
            f"NULL, {base} + g, {base} + g, NULL, NULL",
        ),
    )
    _bulk(
        store,
        _series(
            d,
            PENDING,
            f"INSERT INTO durable_workflows ({_COLUMNS}) SELECT 'p-' {cat} g, '{NAME}', "
            f"'PENDING', NULL, '[]', NULL, '{LIVE}', 'tok-' {cat} g, '{VERSION}', 0, NULL, "
            f"3600000, {far} + g, {base} + g, {now_ms()}, {base} + g, NULL",
        ),
    )
    store.heartbeat(LIVE, VERSION, "bench", 0, 30_000)


def build_history(store: SQLStore, history: int, base: int) -> None:
    d = store.dialect
    chunk = 250_000
    for start in range(0, history, chunk):
        n = min(chunk, history - start)
        off = base + start
        _bulk(
            store,
            _series(
                d,
                n,
                f"INSERT INTO durable_workflows ({_COLUMNS}) SELECT 'h-' || ({start} + g), "
                f"'hist_' || (g - (g / 10) * 10), CASE WHEN g - (g / 100) * 100 = 0 THEN 'ERROR' ELSE 'SUCCESS' END, "
                f"CASE WHEN g - (g / 2) * 2 = 0 THEN '{QUEUE}' END, '[]', '1', 'old-executor', 'tok', "
                f"'{VERSION}', 0, NULL, NULL, NULL, {off} + g, {off} + g, {off} + g, {off} + g",
            ),
        )
        _bulk(
            store,
            _series(
                d,
                n,
                "INSERT INTO durable_steps (workflow_id, step_id, name, output, error, "
                f"child_workflow_id, started_at, finished_at) SELECT 'h-' || ({start} + g), 1, "
                f"'noop', '1', NULL, NULL, {off} + g, {off} + g",
            ),
        )
        # A consumed message for every tenth workflow (they stay until garbage collection).
        _bulk(
            store,
            _series(
                d,
                n // 10,
                "INSERT INTO durable_notifications (destination_id, topic, message, "
                f"idempotency_key, created_at, consumed_at) SELECT 'h-' || ({start} + 10 * g), "
                f"'t', '1', NULL, {off} + g, {off} + g",
            ),
        )
    if d == "postgresql":
        vacuum_analyze(store)


def vacuum_analyze(store: SQLStore) -> None:
    """Measure the steady state, not autovacuum's first pass over the freshly built rows, nor
    the checkpoint the build's WAL set off (until it ends, the first change to each page
    writes the whole page to the WAL again)."""
    import psycopg

    with psycopg.connect(store.conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


class Recorder:
    """Wraps ``store.execute`` to capture the statements one operation runs."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store
        self.original = store.execute
        self.captured: list[tuple[str, tuple]] = []

    def __enter__(self) -> Recorder:
        def execute(conn: Any, sql: str, params: Any = ()) -> Any:
            self.captured.append((sql, tuple(params)))
            return self.original(conn, sql, params)

        self.store.execute = execute  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self.store.execute = self.original  # type: ignore[method-assign]


def explain(store: SQLStore, sql: str, params: tuple) -> list[str]:
    if store.dialect == "postgresql":
        import psycopg

        with psycopg.connect(store.conninfo, autocommit=True) as conn:
            try:
                with conn.transaction(force_rollback=True):
                    if sql.startswith("INSERT INTO durable_steps"):
                        # The checkpoint was just written for real: take it back (rolled back
                        # with the rest) so that its EXPLAIN ANALYZE runs the same INSERT.
                        conn.execute(
                            "DELETE FROM durable_steps WHERE workflow_id = %s AND step_id = %s",
                            params[:2],
                        )
                    rows = conn.execute(
                        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF) " + sql,
                        params,
                    ).fetchall()
            except psycopg.Error:  # e.g. a unique violation on a re-run INSERT: plan only
                rows = conn.execute("EXPLAIN (COSTS OFF) " + sql, params).fetchall()
        return [r[0] for r in rows]
    import sqlite3

    with sqlite3.connect(store.path) as conn:  # type: ignore[attr-defined]
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql.replace("%s", "?"), params).fetchall()
    return [r[-1] for r in rows]


def buffers(plan: list[str]) -> int:
    """Shared buffers (pages) the statement touched: its top node's hit + read count, a
    measure of work that the machine's load does not blur."""
    for line in plan:
        if "Buffers: shared" in line:
            return sum(int(part.split("=")[1]) for part in line.split() if "=" in part)
    return 0


def measure(fn: Callable[[int], Any], calls: int) -> tuple[float, float]:
    times = []
    for i in range(calls):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), max(times)


def operations(store: SQLStore, phase: str) -> dict[str, Callable[[int], Any]]:
    fifo = QueueClaim(QUEUE, 1, None, None, False, (NAME,), (VERSION,))
    prio = QueueClaim(QUEUE, 1, None, None, True, (NAME,), (VERSION,))
    limited = QueueClaim(QUEUE, 1, 5, (1000, 1.0), False, (NAME,), (VERSION,))
    offset = {"0": 0, "1M": 500_000}[phase]
    first_page = store.list_workflows(limit=100)
    cursor = (first_page[-1].created_at, first_page[-1].workflow_id) if first_page else None
    step_base = {"0": 1, "1M": 10_000}[phase]
    finish_base = {"0": 1, "1M": 5_001}[phase]
    return {
        "claim (FIFO)": lambda i: store.claim_from_queue(fifo, "bench-claimer", f"{phase}-"),
        "claim (priority)": lambda i: store.claim_from_queue(prio, "bench-claimer", f"{phase}p-"),
        "claim (concurrency + rate limit)": lambda i: store.claim_from_queue(
            limited, "bench-limited", f"{phase}l-"
        ),
        "delayed check MIN(not_before)": lambda i: store.earliest_delayed(QUEUE),
        "checkpoint (record_step)": lambda i: store.record_step(
            "p-1", "tok-1", step_base + i, "noop", "1", None, None, now_ms()
        ),
        "finish_workflow": lambda i: store.finish_workflow(
            f"p-{finish_base + 1 + i}", f"tok-{finish_base + 1 + i}", "SUCCESS", "1", None
        ),
        "get_workflow": lambda i: store.get_workflow(f"p-{i + 2}"),
        "expire_deadlines (none due)": lambda i: store.expire_deadlines(),
        "recovery scan (pending of executor)": lambda i: store.pending_of_executor(
            LIVE, (VERSION,)
        ),
        "adoption scan (orphaned_workflows)": lambda i: store.orphaned_workflows(
            30_000, (VERSION,)
        ),
        "list status=ERROR": lambda i: store.list_workflows(status=["ERROR"], limit=100),
        "list status=PENDING": lambda i: store.list_workflows(status=["PENDING"], limit=100),
        "list name=hist_3": lambda i: store.list_workflows(name="hist_3", limit=100),
        "list queue": lambda i: store.list_workflows(queue=QUEUE, limit=100),
        "list created range": lambda i: store.list_workflows(
            created_after=1, created_before=10**13, limit=100
        ),
        f"list offset={offset}": lambda i: store.list_workflows(limit=100, offset=offset),
        "list after cursor (keyset)": lambda i: store.list_workflows(limit=100, after=cursor),
    }


def run_phase(store: SQLStore, phase: str, calls: int, show_plans: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, fn in operations(store, phase).items():
        with Recorder(store) as rec:
            fn(10_000 + calls)  # one call whose statements are explained
        median, worst = measure(fn, calls)
        plans = [(sql, explain(store, sql, params)) for sql, params in rec.captured]
        pages = sum(buffers(plan) for _, plan in plans)
        results[label] = {"median_ms": median, "max_ms": worst, "pages": pages, "plans": plans}
        touched = f"   pages {pages:6d}" if store.dialect == "postgresql" else ""
        print(f"  {label:<40} median {median:8.3f} ms   max {worst:8.3f} ms{touched}", flush=True)
        if show_plans:
            for sql, plan in plans:
                print("      SQL:", " ".join(sql.split())[:160])
                for line in plan:
                    print("        ", line)
    return results


@step
def latency_step(i: int) -> int:
    return i


@workflow(name="history_three")
def history_three(i: int) -> int:
    return latency_step(latency_step(latency_step(i)))


def engine_latency(url: str, seconds: float, phase: str) -> dict[str, float]:
    """Launch an engine on the database (its recovery scan, adoption, deadline checks and
    safety polls run as in production) and run 3-step workflows back to back."""
    t0 = time.perf_counter()
    engine = Engine(url, executor_id=f"latency-{phase}", queues=[], run_scheduler=False)
    engine.launch()
    launch = time.perf_counter() - t0
    latencies = []
    try:
        stop = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < stop:
            t1 = time.perf_counter()
            history_three(i)
            latencies.append((time.perf_counter() - t1) * 1000)
            i += 1
    finally:
        engine.shutdown(timeout=5)
    latencies.sort()
    return {
        "launch_ms": launch * 1000,
        "workflows": len(latencies),
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "max_ms": latencies[-1],
    }


def gc_under_load(store: SQLStore, cutoff: int) -> dict[str, Any]:
    """garbage_collect everything before ``cutoff`` while another thread checkpoints."""
    stop = threading.Event()
    latencies: list[float] = []

    def checkpoint() -> None:
        i = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            store.record_step("p-1", "tok-1", 100_000 + i, "noop", "1", None, None, now_ms())
            latencies.append((time.perf_counter() - t0) * 1000)
            i += 1
            time.sleep(0.002)

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    thread = threading.Thread(target=checkpoint)
    thread.start()
    t0 = time.perf_counter()
    deleted = store.garbage_collect(cutoff)
    elapsed = time.perf_counter() - t0
    stop.set()
    thread.join()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    latencies.sort()
    return {
        "deleted": deleted,
        "seconds": elapsed,
        "max_rss_growth_mb": (rss1 - rss0) / 1024,
        "checkpoints": len(latencies),
        "checkpoint_p99_ms": latencies[int(len(latencies) * 0.99)] if latencies else None,
        "checkpoint_max_ms": latencies[-1] if latencies else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.history", description=__doc__)
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--plans", action="store_true", help="print the plans (always saved)")
    parser.add_argument("--no-gc", action="store_true")
    parser.add_argument("--latency-seconds", type=float, default=8.0)
    parser.add_argument("--out", default=None, help="JSON results (default results/history-*)")
    parser.add_argument("--database", default="perf_history", help="PostgreSQL database")
    args = parser.parse_args(argv)

    tmp = tempfile.TemporaryDirectory()
    if args.backend == "postgres":
        from benchmarks.databases import drop_postgres, recreate_postgres

        url = recreate_postgres(args.database)
    else:
        url = f"sqlite:///{tmp.name}/history.sqlite3"
    store = open_store(url, pool_size=4)
    try:
        store.migrate()
        base = now_ms() - 10**9
        t0 = time.perf_counter()
        build_inflight(store, args.backlog, base + 2 * args.history)
        if store.dialect == "postgresql":
            vacuum_analyze(store)
        print(f"[{args.backend}] in-flight rows built in {time.perf_counter() - t0:.1f}s")
        print(f"[{args.backend}] history 0, backlog {args.backlog:,}:")
        empty = run_phase(store, "0", args.calls, args.plans)
        latency_empty = engine_latency(url, args.latency_seconds, "0")
        print(f"  engine at 0 rows: {latency_empty}")
        t0 = time.perf_counter()
        build_history(store, args.history, base)
        print(f"[{args.backend}] {args.history:,} finished workflows built in "
              f"{time.perf_counter() - t0:.1f}s")  # fmt: skip
        print(f"[{args.backend}] history {args.history:,}, backlog {args.backlog:,}:")
        full = run_phase(store, "1M", args.calls, args.plans)
        latency_full = engine_latency(url, args.latency_seconds, "1M")
        print(f"  engine at {args.history:,} rows: {latency_full}")
        print(f"\n{'median ms (pages)':<40} {'0 rows':>16} {'1M rows':>16} {'ratio':>7}")
        for label in full:
            zero = empty.get(label.replace("offset=500000", "offset=0"), {})
            a, b = zero.get("median_ms"), full[label]["median_ms"]
            pa, pb = zero.get("pages", 0), full[label]["pages"]
            ratio = f"{b / a:7.2f}" if a else "      -"
            cells = (
                [f"{a:8.3f} ({pa:5d})", f"{b:8.3f} ({pb:5d})"]
                if pb
                else [f"{a:16.3f}", f"{b:16.3f}"]
            )
            print(f"{label:<40} {cells[0]:>16} {cells[1]:>16} {ratio}")
        gc = None
        if not args.no_gc:
            t0 = time.perf_counter()
            gc = gc_under_load(store, base + 2 * args.history - 1)
            print(f"\ngarbage_collect: {gc}")
        out = Path(args.out or f"benchmarks/results/history-{args.backend}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        latency = {"0": latency_empty, "full": latency_full}
        out.write_text(
            json.dumps({"empty": empty, "full": full, "gc": gc, "latency": latency}, indent=1)
        )
        print(f"results in {out}")
    finally:
        store.close()
        if args.backend == "postgres":
            drop_postgres(args.database)
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
