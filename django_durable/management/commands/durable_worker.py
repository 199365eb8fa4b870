"""``manage.py durable_worker``: recover, serve queues and run schedules until SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import autodiscover_modules


class Command(BaseCommand):
    help = (
        "Run durable workflows: recover this executor's pending work, serve queues and run "
        "@scheduled workflows until SIGTERM or SIGINT, then shut down gracefully."
    )
    requires_system_checks = "__all__"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--queues", help="comma-separated queue names (default: all)")
        parser.add_argument(
            "--concurrency", type=int, help="most workflows running at once in this process"
        )
        parser.add_argument(
            "--executor-id",
            help="stable name of this worker, so a restart recovers its own work at once",
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=float,
            default=30.0,
            help="seconds to let running steps finish after a signal (default 30)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from django_durable.engine import build_engine, set_engine

        autodiscover_modules("tasks")  # Django task functions are workflows too
        overrides: dict[str, Any] = {}
        if options["queues"] is not None:
            overrides["queues"] = [q.strip() for q in options["queues"].split(",") if q.strip()]
        if options["concurrency"] is not None:
            if options["concurrency"] < 1:
                raise CommandError("--concurrency must be at least 1")
            overrides["max_workers"] = options["concurrency"]
        if options["executor_id"]:
            overrides["executor_id"] = options["executor_id"]
        engine = build_engine(worker=True, **overrides)
        stop = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            set_engine(engine)
            engine.launch()
            served = engine.queue_worker.served() if engine.queue_worker else []
            self.stdout.write(
                f"durable_worker {engine.executor_id} running on {engine.url.redacted}; "
                f"queues: {', '.join(q.name for q in served) or '(none)'}"
            )
            self.stdout.flush()
            while not stop.wait(1.0):
                pass
            self.stdout.write("shutting down: letting running steps finish…")
            engine.shutdown(timeout=options["shutdown_timeout"])
            self.stdout.write("stopped")
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
