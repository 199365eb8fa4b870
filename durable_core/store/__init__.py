"""The system database behind one interface: ``open_store(url)`` picks the implementation."""

from __future__ import annotations

from ..clock import Clock
from .base import (
    FinalStep,
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
    "FinalStep",
    "OwnershipLost",
    "QueueClaim",
    "QueueSettings",
    "ScheduleRow",
    "SQLStore",
    "StepRow",
    "WorkflowRow",
    "DatabaseURL",
    "database_time_sql",
    "now_ms",
    "open_store",
    "parse_database_url",
    "redact",
    "resolve_database_url",
]


def database_time_sql(dialect: str) -> str:
    """The statement that reads the database server's clock (epoch milliseconds) in
    ``dialect`` ("postgresql" or "sqlite"): for code that reads the system tables through a
    connection of its own (the Django admin) and compares their times by the one clock."""
    if dialect == "postgresql":
        from .postgres import PostgresStore

        return PostgresStore.database_time_sql
    from .sqlite import SQLiteStore

    return SQLiteStore.database_time_sql


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
