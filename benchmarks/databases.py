"""Preparing the databases each measurement runs on, and describing the server.

Every (system, workload) gets a freshly created database, so no measurement pays for rows,
dead tuples or listeners that an earlier one left behind, and the two systems never share
tables. Only the runner calls this; workers receive a ready, empty database URL.
"""

from __future__ import annotations

import os
import re
import sqlite3
from typing import Any

from benchmarks.config import PG_SERVER_URL, pg_url, sqlite_url

_SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def _admin_connection() -> Any:
    import psycopg

    return psycopg.connect(pg_url("postgres"), autocommit=True)


def recreate_postgres(name: str) -> str:
    """Drop (terminating leftover sessions) and create database ``name``; return its URL."""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"refusing unusual database name {name!r}")
    with _admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_url(name)


def drop_postgres(name: str) -> None:
    if not _SAFE_NAME.match(name):
        raise ValueError(f"refusing unusual database name {name!r}")
    with _admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_sqlite(directory: str, name: str) -> str:
    """Remove ``name``.sqlite3 and its journal files in ``directory``; return its URL."""
    path = os.path.join(directory, f"{name}.sqlite3")
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass
    return sqlite_url(path)


def describe_postgres() -> dict[str, str]:
    """Server version and the durability settings that decide what a COMMIT costs."""
    settings = (
        "server_version",
        "fsync",
        "synchronous_commit",
        "wal_sync_method",
        "max_connections",
    )
    try:
        with _admin_connection() as conn:
            return {s: str(conn.execute(f"SHOW {s}").fetchone()[0]) for s in settings}  # noqa: S608
    except Exception as exc:  # informational only
        return {"error": f"{type(exc).__name__}: {exc}", "server": PG_SERVER_URL}


def describe_sqlite() -> dict[str, str]:
    return {"sqlite_version": sqlite3.sqlite_version}
