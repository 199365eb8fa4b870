"""``manage.py durable_worker``: the core worker loop (``durable worker``) on this project.

Recovers this executor's pending work, serves queues and runs ``@scheduled`` workflows until
SIGTERM/SIGINT, then shuts down within ``--shutdown-timeout`` and exits 0; a second signal
exits at once. Workflows are found by the app's discovery of ``workflows.py`` and ``tasks.py``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


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
            "--application-version",
            help="default: DURABLE['APPLICATION_VERSION'] or a digest of the workflows' source",
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=float,
            default=30.0,
            help="seconds to let running steps finish after a signal (default 30)",
        )
        parser.add_argument(
            "--log-level",
            type=str.upper,
            choices=LOG_LEVELS,
            default="INFO",
            help="log records of this level and above to stderr (default INFO)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from django_durable.engine import build_engine, set_engine
        from durable_core.cli import check_queues, configure_logging, serve

        if options["shutdown_timeout"] < 0:
            raise CommandError("--shutdown-timeout must be at least 0")
        configure_logging(options["log_level"])
        overrides: dict[str, Any] = {}
        if options["queues"] is not None:
            overrides["queues"] = [q.strip() for q in options["queues"].split(",") if q.strip()]
            try:
                check_queues(overrides["queues"], "this project")
            except Exception as exc:
                raise CommandError(str(getattr(exc, "message", exc))) from None
        if options["concurrency"] is not None:
            if options["concurrency"] < 1:
                raise CommandError("--concurrency must be at least 1")
            overrides["max_workers"] = options["concurrency"]
        for key in ("executor_id", "application_version"):
            if options[key]:
                overrides[key] = options[key]
        engine = build_engine(worker=True, **overrides)
        set_engine(engine)

        def announce(engine: Any) -> None:
            served = engine.queue_worker.served() if engine.queue_worker else []
            self.stdout.write(
                f"durable_worker {engine.executor_id} running on {engine.url.redacted} "
                f"(version {engine.application_version}); "
                f"queues: {', '.join(q.name for q in served) or '(none)'}"
            )
            self.stdout.flush()

        serve(engine, options["shutdown_timeout"], on_ready=announce)
        self.stdout.write("stopped")
