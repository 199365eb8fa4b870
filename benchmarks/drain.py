"""``python -m benchmarks.drain``: queue drain next to a long history, against an empty table.

For each history size (default 0 and 1M finished workflows, half of them in the drained
queue), builds a fresh system database, bulk-inserts ``--count`` ENQUEUED one-step workflows,
launches one engine serving the queue and reports how many workflows a second it drains
(first claim to last finish).

    python -m benchmarks.drain --backend postgres --count 20000 --history 0 1000000
"""

from __future__ import annotations

import argparse
import tempfile
import time

from benchmarks.history import QUEUE, _bulk, _series, build_history
from durable_core import Engine, Queue, step, workflow
from durable_core.store import open_store

drain_queue = Queue(QUEUE)


@step
def drain_step(i: int) -> int:
    return i


@workflow(name="drain_one")
def drain_one(i: int) -> int:
    return drain_step(i)


def run(backend: str, history: int, count: int, tmp: str) -> float:
    if backend == "postgres":
        from benchmarks.databases import recreate_postgres

        url = recreate_postgres("perf_drain")
    else:
        url = f"sqlite:///{tmp}/drain-{history}.sqlite3"
    store = open_store(url, pool_size=2)
    store.migrate()
    base = store.now_ms() - 10**9
    build_history(store, history, base)
    _bulk(
        store,
        _series(
            store.dialect,
            count,
            "INSERT INTO durable_workflows (workflow_id, name, status, queue_name, inputs, "
            "created_at, updated_at) SELECT 'drain-' || g, 'drain_one', 'ENQUEUED', "
            f"'{QUEUE}', '{{\"args\": [1], \"kwargs\": {{}}}}', {base + 2 * history} + g, "
            f"{base + 2 * history} + g",
        ),
    )
    if store.dialect == "postgresql":
        store.run("ANALYZE")
    done_sql = (
        "SELECT COUNT(*), MIN(started_at), MAX(finished_at) FROM durable_workflows "
        "WHERE name = 'drain_one' AND status = 'SUCCESS'"
    )
    with Engine(url, executor_id=f"drain-{history}", queues=[QUEUE], run_scheduler=False):
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            n, first, last = store.fetchone(done_sql)
            if n >= count:
                break
            time.sleep(0.2)
    store.close()
    if backend == "postgres":
        from benchmarks.databases import drop_postgres

        drop_postgres("perf_drain")
    return count / ((last - first) / 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.drain", description=__doc__)
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--history", type=int, nargs="+", default=[0, 1_000_000])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rates = {h: run(args.backend, h, args.count, tmp) for h in args.history}
    for h, rate in rates.items():
        ratio = rate / rates[args.history[0]]
        print(f"[{args.backend}] drain {args.count:,} next to {h:>9,} finished: "
              f"{rate:7.0f} wf/s ({ratio:.2f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
