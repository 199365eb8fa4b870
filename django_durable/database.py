"""The system database URL derived from a Django ``DATABASES`` entry."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlencode

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


def database_url(alias: str) -> str:
    """The URL of the database behind ``alias`` as the running process sees it.

    Read from ``connections[alias].settings_dict`` (not ``settings.DATABASES``) so that the
    test runner's renamed test database is the one used.
    """
    db = connections[alias].settings_dict
    return url_from_settings(alias, db)


def url_from_settings(alias: str, db: dict) -> str:
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
