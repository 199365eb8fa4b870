"""Applying the core schema through a Django connection (used by this app's migrations).

The statements come from ``durable_core.store.schema`` (the one definition), applied by the
core's own ``SQLStore.migrate`` algorithm, so the version row in ``durable_schema`` is written
and a later ``Engine.launch()`` finds the schema current. It is idempotent: an engine that
launched first (and created the schema itself) leaves nothing to do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from durable_core.integration import MIGRATION_LOCK_KEY, SQLStore, system_functions, system_tables


class _Cursor:
    """``conn.execute(sql, params)`` over a Django cursor, as the store calls it."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    def execute(self, sql: str, params: Any = ()) -> Any:
        self.cursor.execute(sql, list(params) if params else None)
        return self.cursor


class DjangoSchemaStore(SQLStore):
    """Just enough of a store to run ``migrate()`` inside Django's migration transaction."""

    def __init__(self, connection: Any) -> None:
        # Not ``self.connection``: that is SQLStore's own (a context manager of its pool).
        self.django_connection = connection
        self.dialect = "postgresql" if connection.vendor == "postgresql" else "sqlite"

    @contextlib.contextmanager
    def migration_lock(self) -> Iterator[Any]:
        with self.django_connection.cursor() as cursor:
            conn = _Cursor(cursor)
            if self.dialect == "postgresql":
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            yield conn


def apply_core_schema(connection: Any) -> int:
    """Create or upgrade the system tables on ``connection``; returns the schema version."""
    # Schema version 4 includes durable_transaction_outputs (with TEXT IDs), which the
    # Django @transaction adapter writes on this same alias.
    return DjangoSchemaStore(connection).migrate()


def drop_core_schema(connection: Any) -> None:
    """Undo ``apply_core_schema`` (``migrate django_durable zero``): every table and trigger
    function of the core's schema, as its migrations list them."""
    dialect = "postgresql" if connection.vendor == "postgresql" else "sqlite"
    with connection.cursor() as cursor:
        for table in system_tables(dialect):
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        for function in system_functions(dialect):
            cursor.execute(f"DROP FUNCTION IF EXISTS {function}() CASCADE")
