"""The process's engine, built from the Django settings and started at first use.

Web processes get an engine that launches lazily (from a sync or an async view alike) the first
time a workflow is started, enqueued, looked up or messaged, serves only ``DURABLE["QUEUES"]``
(default: none) and runs no schedules. ``durable_worker`` replaces it with a full engine.
Management commands like ``migrate`` never touch it, so they never launch anything.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from durable_core import Engine, set_default_engine
from durable_core.errors import DurableError
from durable_core.integration import parse_database_url

from .conf import durable_settings
from .database import database_url
from .transactions import DjangoTransactions

_engine: Engine | None = None
_lock = threading.Lock()


class DjangoEngine(Engine):
    """An Engine on a Django database alias, with the Django transaction adapter."""

    def __init__(self, alias: str, *, lazy: bool = True, **options: Any) -> None:
        self.alias = alias
        self.lazy = lazy
        timeouts = durable_settings()["TRANSACTION_TIMEOUTS"]
        super().__init__(
            database_url(alias), transactions=DjangoTransactions(alias, timeouts), **options
        )

    def launch(self) -> DjangoEngine:
        if not self.launched:
            # The test runner renames databases after the app registry is ready: re-read.
            url = database_url(self.alias)
            if url != self.database_url:
                self.database_url = url
                self.url = parse_database_url(url)
        super().launch()
        return self

    def require_launched(self) -> None:
        if not self.launched and self.lazy and not self.stopping.is_set():
            self.launch()
        super().require_launched()


def build_engine(*, worker: bool = False, **overrides: Any) -> DjangoEngine:
    """An engine configured from ``settings.DURABLE``; ``overrides`` are Engine options."""
    conf = durable_settings()
    options: dict[str, Any] = {
        "executor_id": conf["EXECUTOR_ID"],
        "application_version": conf["APPLICATION_VERSION"],
        "queues": list(conf["QUEUES"]) if conf["QUEUES"] is not None else (None if worker else []),
        "run_scheduler": worker,
    }
    options.update(overrides)
    return DjangoEngine(conf["DATABASE"], lazy=not worker, **options)


def get_engine() -> DjangoEngine:
    """The engine of this process (built on first call; launched on first real use)."""
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                try:
                    _engine = build_engine()
                except (DurableError, ImproperlyConfigured) as exc:
                    raise ImproperlyConfigured(f"django_durable: {exc}") from exc
                set_default_engine(_engine)
    return _engine  # type: ignore[return-value]


def set_engine(engine: DjangoEngine | None) -> None:
    """Make ``engine`` this process's engine (and durable_core's default engine)."""
    global _engine
    with _lock:
        previous, _engine = _engine, engine
    if previous is not None and previous is not engine and previous.launched:
        previous.shutdown(timeout=5)
    set_default_engine(engine)
