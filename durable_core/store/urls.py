"""Parsing and redaction of database URLs (passwords never reach logs or errors)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite:///durable.sqlite3"


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    # Also without a scheme ("user:secret@host"), as a mistyped URL is echoed in errors.
    return re.sub(r"((?:^|://)[^:/@\s]*:)[^@/\s]*@", r"\1***@", str(url))


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    dialect: str  # "sqlite" or "postgresql"
    url: str  # as given (may carry a password)
    path: str | None = None  # sqlite file path, ":memory:" is refused

    @property
    def redacted(self) -> str:
        return redact(self.url)

    @property
    def libpq(self) -> str:
        """The URL in the form psycopg accepts (no SQLAlchemy driver suffix)."""
        parts = urlsplit(self.url)
        return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))

    @property
    def sqlalchemy(self) -> str:
        if self.dialect == "sqlite":
            return f"sqlite:///{self.path}"
        parts = urlsplit(self.url)
        return urlunsplit(
            ("postgresql+psycopg", parts.netloc, parts.path, parts.query, parts.fragment)
        )


def resolve_database_url(url: str | None) -> str:
    return url or os.environ.get("DURABLE_DATABASE_URL") or DEFAULT_DATABASE_URL


def parse_database_url(url: str) -> DatabaseURL:
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"Malformed database URL {redact(str(url))!r}: expected sqlite:///path/to/file.sqlite3 "
            "or postgresql://user@host:port/dbname"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite" or scheme.startswith("sqlite+"):
        path = url.split("://", 1)[1]
        if path.startswith("/"):
            path = path[1:]
        path = path.split("?", 1)[0]
        if not path or path == ":memory:":
            raise ConfigurationError(
                f"SQLite database URL {url!r} needs a file path (an in-memory database would "
                "not survive a crash, and other processes could not see it)."
            )
        return DatabaseURL("sqlite", url, path)
    if scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+"):
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 - validates the port
        except ValueError:
            raise ConfigurationError(f"Malformed database URL {redact(url)!r}: bad port") from None
        if not parts.hostname and "host=" not in parts.query:
            raise ConfigurationError(f"Malformed database URL {redact(url)!r}: no host")
        return DatabaseURL("postgresql", url)
    raise ConfigurationError(
        f"Unsupported database URL {redact(url)!r}: use sqlite:///… or postgresql://…"
    )
