"""The app's database and its ``Durable``: one database for the agent's tables and the
workflows' system tables, so starting a workflow commits with the request's own writes.

Settings from the environment: ``AGENT_DATABASE_URL`` (default ``sqlite:///agent.sqlite3``)."""

from __future__ import annotations

import os

from models import Base
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from durable_core.store import parse_database_url
from fastapi_durable import Durable

DATABASE_URL = os.environ.get("AGENT_DATABASE_URL", "sqlite:///agent.sqlite3")

app_engine = create_engine(parse_database_url(DATABASE_URL).sqlalchemy, pool_pre_ping=True)
durable = Durable(database_url=DATABASE_URL, app_engine=app_engine)


def create_tables() -> None:
    """Create the agent's tables; several workers may start at once, so PostgreSQL takes a
    lock and a lost race on SQLite (table already exists) is retried."""
    for attempt in range(3):
        try:
            with durable.app_engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(7272746)"))
                Base.metadata.create_all(conn)
            return
        except DBAPIError:
            if attempt == 2:
                raise
