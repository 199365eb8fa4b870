"""The process's engine, built from the Django settings and started at first use.

Web processes get an engine that launches lazily (from a sync or an async view alike) the first
time a workflow is started, enqueued, looked up or messaged, serves only ``DURABLE["QUEUES"]``
(default: none) and runs no schedules. ``durable_worker`` replaces it with a full engine.
Management commands like ``migrate`` never touch it, so they never launch anything.

On SQLite a launch writes to the database file (the executor's heartbeat), so it cannot happen
inside a transaction of the same thread that holds SQLite's single write lock: it would wait
for a lock its own thread holds. Web processes on SQLite therefore launch when a request
starts, before the view opens any transaction; a first use inside ``atomic()`` anywhere else
is refused with an error that says what to do, instead of hanging.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from durable_core import Engine, set_default_engine
from durable_core.errors import DurableError, EngineNotRunning, SchemaVersionError
from durable_core.integration import parse_database_url

from .conf import durable_settings
from .database import database_url
from .transactions import DjangoTransactions

log = logging.getLogger("django_durable.engine")

_engine: Engine | None = None
_lock = threading.Lock()


class LaunchInTransaction(DurableError, RuntimeError):
    """The engine's first use happened inside a SQLite transaction that holds the write lock."""


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
            check_migrated(self.alias)
        was_launched = self.launched
        super().launch()
        if not was_launched:
            self._discover_task_queues()
        _launched_engines.add(self)
        _shut_down_before_test_database_drop(self.alias)
        return self

    def _discover_task_queues(self) -> None:
        """A worker serving every queue also serves the queues that tasks name only when they
        are enqueued (a task backend with ``QUEUES: []``; see tasks.QueueDiscovery)."""
        if self.lazy or self.queue_names is not None:
            return
        try:
            from . import tasks
        except ImportError:  # no task framework installed
            return
        if tasks.accepts_any_queue():
            discovery = tasks.QueueDiscovery(self)
            discovery.discover()
            discovery.start()

    def in_sqlite_transaction(self) -> bool:
        """Whether this thread is inside ``atomic()`` on the durable alias, on SQLite."""
        connection = connections[self.alias]
        return connection.vendor == "sqlite" and connection.in_atomic_block

    def launch_outside_transaction(self) -> None:
        """Launch now if this lazy engine has not been, unless this thread is inside a SQLite
        transaction (see the module docstring). Used when a web request starts."""
        if self.launched or not self.lazy or self.stopping.is_set():
            return
        if not self.in_sqlite_transaction():
            self.launch()

    def require_launched(self) -> None:
        if not self.launched and self.lazy and not self.stopping.is_set():
            if not apps.ready:
                raise EngineNotRunning(
                    "django_durable: a workflow was started, enqueued or looked up while "
                    "Django was still loading its apps (at import time of a module, e.g. "
                    "at the top level of workflows.py or models.py). Make the call at run "
                    "time instead: in a view, a management command, a signal receiver, or "
                    "a @scheduled workflow for work that should happen periodically."
                )
            if self.in_sqlite_transaction():
                raise LaunchInTransaction(
                    "django_durable: the durable engine of this process has not started yet, "
                    "and it cannot start inside transaction.atomic() on SQLite: starting "
                    "writes to the database file whose write lock this transaction holds. "
                    "Start it before the transaction: call "
                    "django_durable.get_engine().launch() first (web requests do this for you "
                    'when they start; for tests see "Testing" in '
                    "docs/django.md)."
                )
            self.launch()
        super().require_launched()


_launched_engines: weakref.WeakSet[DjangoEngine] = weakref.WeakSet()


def _shut_down_before_test_database_drop(alias: str) -> None:
    """The test runner drops the test database when the tests end; PostgreSQL refuses while
    the engines' pooled and LISTEN connections are open (`manage.py test` then exits 1 although
    every test passed). Django sends no signal before the drop, so the drop of this alias's
    test database is wrapped: engines on the alias shut down first."""
    creation = connections[alias].creation
    if getattr(creation, "durable_wrapped", False):
        return
    destroy = creation.destroy_test_db

    def destroy_test_db(*args: Any, **kwargs: Any) -> Any:
        for engine in list(_launched_engines):
            if engine.alias == alias and engine.launched:
                engine.shutdown(timeout=5)
        return destroy(*args, **kwargs)

    creation.destroy_test_db = destroy_test_db
    creation.durable_wrapped = True


def check_migrated(alias: str) -> None:
    """Refuse to launch on a database where ``django_durable``'s migrations are not all
    applied: the engine would otherwise run without the tables that ``@transaction`` steps
    need, and fail after a step with side effects already ran."""
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connections[alias], ignore_no_migrations=True)
    ours = {key for key in loader.disk_migrations if key[0] == "django_durable"}
    missing = sorted(name for _, name in ours - set(loader.applied_migrations))
    if missing:
        raise SchemaVersionError(
            f"django_durable: the database {alias!r} is missing the django_durable "
            f"migration(s) {', '.join(missing)}. Run `python manage.py migrate` (with "
            f"`--database {alias}` if it is not the default) before starting workflows."
        )


def launch_at_request_start(**kwargs: Any) -> None:
    """``request_started`` receiver: on SQLite, launch the web process's engine before the
    view opens a transaction. A failure (say, an unmigrated database) is logged once; the
    request goes on, and the first use of the engine reports the error."""
    global _launch_warned
    engine = _engine
    if not isinstance(engine, DjangoEngine) or engine.launched:
        return
    if connections[engine.alias].vendor != "sqlite":
        return  # a PostgreSQL launch takes no lock the request could hold: stay lazy
    try:
        engine.launch_outside_transaction()
    except Exception as exc:
        if not _launch_warned:
            _launch_warned = True
            log.warning("django_durable: the engine did not start: %s", exc)


_launch_warned = False


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
                from .checks import check_durable_settings

                errors = [e for e in check_durable_settings() if e.is_serious()]
                if errors:
                    raise ImproperlyConfigured(
                        f"django_durable: {errors[0].msg} {errors[0].hint or ''}".strip()
                    )
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
