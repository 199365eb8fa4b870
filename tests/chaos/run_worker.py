"""A worker process for the chaos and outage tests: ``python -m tests.chaos.run_worker URL
EXECUTOR_ID [--lease S] [--heartbeat S] [--ready FILE]``.

Connections are capped (system pool, @transaction pool, threads) because PostgreSQL's
``max_connections`` is shared by every worker and every test on the machine.
"""

from __future__ import annotations

import argparse
import logging
import threading

from sqlalchemy import create_engine

import tests.chaos.flows  # noqa: F401  (registers the workflows and queues)
from durable_core import Engine
from durable_core.store import parse_database_url
from tests.crash import workers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("executor_id")
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--heartbeat", type=float, default=10.0)
    parser.add_argument("--ready", default=None, help="file written once launched")
    opts = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    app = create_engine(
        parse_database_url(opts.database_url).sqlalchemy,
        pool_size=4,
        max_overflow=4,
        pool_pre_ping=True,
    )
    engine = Engine(
        opts.database_url,
        app_database=app,
        executor_id=opts.executor_id,
        application_version="test",
        lease_seconds=opts.lease,
        heartbeat_seconds=opts.heartbeat,
        max_workers=16,
        pool_size=8,
        run_scheduler=False,
    )
    engine.launch()
    if opts.ready:
        workers.append(opts.ready, "ready")
    threading.Event().wait()


if __name__ == "__main__":
    main()
