"""The system database behind one interface: ``open_store(url)`` picks the implementation."""

from __future__ import annotations

from ..clock import Clock
from .base import (
    OwnershipLost,
    QueueClaim,
    QueueSettings,
    ScheduleRow,
    SQLStore,
    StepRow,
    WorkflowRow,
    now_ms,
)
from .urls import DatabaseURL, parse_database_url, redact, resolve_database_url

__all__ = [
    "OwnershipLost",
    "QueueClaim",
    "QueueSettings",
    "ScheduleRow",
    "SQLStore",
    "StepRow",
    "WorkflowRow",
    "DatabaseURL",
    "now_ms",
    "open_store",
    "parse_database_url",
    "redact",
    "resolve_database_url",
]


def open_store(
    url: str | DatabaseURL,
    *,
    pool_size: int = 20,
    application_name: str = "durable",
    clock: Clock | None = None,
) -> SQLStore:
    """Open (but do not migrate) the system database at ``url``, with ``clock`` (default: a
    ``DatabaseClock``) calibrated against it."""
    store = _open(url, pool_size, application_name)
    if clock is not None:
        store.clock = clock
    try:
        store.clock.calibrate(store.database_time_ms)
    except BaseException:
        store.close()
        raise
    return store


def _open(url: str | DatabaseURL, pool_size: int, application_name: str) -> SQLStore:
    from ..errors import DatabaseUnavailable

    parsed = url if isinstance(url, DatabaseURL) else parse_database_url(url)
    if parsed.dialect == "sqlite":
        from .sqlite import SQLiteStore

        try:
            return SQLiteStore(parsed.path or "")
        except Exception as exc:
            raise DatabaseUnavailable(
                f"Cannot open SQLite database {parsed.path!r}: {exc}"
            ) from None
    from .postgres import PostgresStore, configuration_error

    store = PostgresStore(parsed.libpq, max_size=pool_size, application_name=application_name)
    try:
        store.open()
    except Exception as exc:
        store.close()
        misconfigured = configuration_error(exc)
        if misconfigured is not None:
            raise misconfigured from None
        raise DatabaseUnavailable(
            f"Cannot connect to the system database at {parsed.redacted}: {redact(str(exc))}"
        ) from None
    return store
