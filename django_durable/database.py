"""The system database URL derived from a Django ``DATABASES`` entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

# libpq connection parameters that may sit in a Django OPTIONS dict and mean the same in a URL.
_LIBPQ_OPTIONS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "options",
    "connect_timeout",
    "application_name",
    "target_session_attrs",
)


# What the web process and the workers need to share one SQLite file: transactions that take
# the write lock when they begin (a DEFERRED transaction that reads, then writes, fails at
# once with "database is locked" when another process wrote in between) and a busy timeout
# that waits for it. Applied to the DURABLE alias when the project did not set them.
SQLITE_DEFAULTS = {"transaction_mode": "IMMEDIATE", "timeout": 20}


def apply_sqlite_defaults(alias: str) -> dict[str, Any]:
    """Fill in ``SQLITE_DEFAULTS`` in ``DATABASES[alias]["OPTIONS"]`` (SQLite only), before
    any connection opens. Returns what was set."""
    db = settings.DATABASES.get(alias)
    if not isinstance(db, dict) or not str(db.get("ENGINE", "")).endswith("sqlite3"):
        return {}
    options = db.setdefault("OPTIONS", {})
    added = {k: v for k, v in SQLITE_DEFAULTS.items() if k not in options}
    options.update(added)
    return added


def database_url(alias: str) -> str:
    """The URL of the database behind ``alias`` as the running process sees it.

    Read from ``connections[alias].settings_dict`` (not ``settings.DATABASES``) so that the
    test runner's renamed test database is the one used.
    """
    db = connections[alias].settings_dict
    return url_from_settings(alias, db)


def url_from_settings(alias: str, db: dict[str, Any]) -> str:
    engine = db.get("ENGINE", "")
    if engine.endswith("sqlite3"):
        name = str(db.get("NAME") or "")
        if not name or name == ":memory:" or "mode=memory" in name:
            raise ImproperlyConfigured(
                f"DATABASES[{alias!r}] is an in-memory SQLite database; durable workflows need a "
                "file (set NAME, and TEST NAME for tests)."
            )
        return f"sqlite:///{Path(name).absolute()}"
    if "postgresql" in engine or "postgis" in engine:
        user = quote(str(db.get("USER") or ""), safe="")
        password = quote(str(db.get("PASSWORD") or ""), safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = str(db.get("HOST") or "localhost")
        query: dict[str, str] = {}
        if host.startswith("/"):  # a Unix socket directory
            query["host"] = host
            host = "localhost"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        options = db.get("OPTIONS") or {}
        query.update({k: str(options[k]) for k in _LIBPQ_OPTIONS if k in options})
        suffix = f"?{urlencode(query)}" if query else ""
        return f"postgresql://{auth}{host}{port}/{quote(str(db.get('NAME') or ''))}{suffix}"
    raise ImproperlyConfigured(
        f"DATABASES[{alias!r}] uses {engine!r}; durable workflows support SQLite and PostgreSQL."
    )
