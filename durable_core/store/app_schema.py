"""The one table durable keeps in the *application* database: ``durable_transaction_outputs``.

Its rows commit in the same transaction as a ``@transaction`` step's own writes. It is created
by migration (``durable migrate --app-database URL``, or an engine with ``migrate=True``),
never by the first step that needs it: two workers creating it at once on a fresh PostgreSQL
database raced on the catalog, and a runtime role with DML rights only cannot create it at all.
Functions here take a SQLAlchemy ``Connection`` inside a transaction (an ``AsyncConnection``
calls them through ``run_sync``).
"""

from __future__ import annotations

from typing import Any

from ..errors import SchemaVersionError
from .schema import MIGRATION_LOCK_KEY, TRANSACTION_OUTPUTS_DDL, TRANSACTION_OUTPUTS_TEXT_ID

TABLE = "durable_transaction_outputs"

# pg_catalog is readable by every role, so a DML-only role can run this check.
_PG_ID_TYPE = (
    "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
    "WHERE a.attrelid = to_regclass('durable_transaction_outputs') "
    "AND a.attname = 'workflow_id' AND NOT a.attisdropped"
)


def app_schema_state(conn: Any) -> str:
    """``"current"``, ``"missing"`` or ``"outdated"`` (a VARCHAR(255) ID column of an older
    release, which refuses the long IDs that validation accepts). Reads only."""
    from sqlalchemy import inspect, text

    if conn.dialect.name == "postgresql":
        row = conn.execute(text(_PG_ID_TYPE)).first()
        if row is None:
            return "missing"
        return "current" if row[0] == "text" else "outdated"
    return "current" if inspect(conn).has_table(TABLE) else "missing"


def migrate_app_schema(conn: Any) -> bool:
    """Create or upgrade the table; True when something changed. Serialized with every other
    migration of the same PostgreSQL database by the advisory lock the system schema uses."""
    from sqlalchemy import text

    postgres = conn.dialect.name == "postgresql"
    if postgres:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    state = app_schema_state(conn)  # again, under the lock: another process may have done it
    if state == "missing":
        conn.execute(text(TRANSACTION_OUTPUTS_DDL))
        return True
    if state == "outdated" and postgres:
        conn.execute(text(TRANSACTION_OUTPUTS_TEXT_ID))
        return True
    return False


def ensure_app_schema(conn: Any, migrate: bool) -> None:
    """Check the table (reads only); migrate it when allowed, else raise a clear error."""
    if app_schema_state(conn) == "current":
        return
    if not migrate:
        raise SchemaVersionError(
            f"The application database has no current {TABLE} table, which @transaction "
            "steps need. Run `durable migrate --app-database URL` (or launch the Engine with "
            "migrate=True)."
        )
    migrate_app_schema(conn)


def migrate_app_database(url: str) -> bool:
    """``durable migrate --app-database URL``: create or upgrade the table at ``url``."""
    from sqlalchemy import create_engine

    from .urls import parse_database_url

    engine = create_engine(parse_database_url(url).sqlalchemy)
    try:
        with engine.begin() as conn:
            return migrate_app_schema(conn)
    finally:
        engine.dispose()
