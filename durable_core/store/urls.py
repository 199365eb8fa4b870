"""Parsing and redaction of database URLs (passwords never reach logs or errors)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from ..errors import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite:///durable.sqlite3"


# A URL inside free text (an error message): up to whitespace (a closing quote may be
# swallowed; only the userinfo up to the last '@' is changed, so that hides more, not less).
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S*")
# "user:secret@host" typed without a scheme, echoed in an error.
_SCHEMELESS = re.compile(r"(^|[\s'\"(])([^\s:/@'\"()]+):(?!//)\S*@")
# Passwords given as parameters: ?password=…, &sslpassword=…, libpq "password=… host=…".
_PARAM = re.compile(r"((?:^|[?&;\s'\"])(?:ssl)?pass(?:word|wd)=)('[^']*'|[^&\s'\"]*)", re.I)


def _redact_url(url: str) -> str:
    """Hide everything between the first ':' of the userinfo and its end. The userinfo ends
    at the *last* '@': a password may hold '@', '/' or '?' (unencoded), never a host."""
    scheme, _, rest = url.partition("://")
    at = rest.rfind("@")
    if at >= 0 and ":" in rest[:at]:
        user = rest[:at].split(":", 1)[0]
        rest = f"{user}:***@{rest[at + 1 :]}"
    return f"{scheme}://{rest}"


def redact(text: str) -> str:
    """``text`` (a URL, or a message that may quote one) with every password replaced by
    ``***``: in the userinfo, in ``password=`` parameters, and in a URL typed without a
    scheme."""
    text = str(text)
    if "://" in text and not any(c.isspace() for c in text.strip()):
        text = _redact_url(text.strip())  # a whole URL: nothing ends it early
    else:
        text = _URL_IN_TEXT.sub(lambda m: _redact_url(m.group(0)), text)
        text = _SCHEMELESS.sub(r"\1\2:***@", text)
    return _PARAM.sub(r"\1***", text)


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    dialect: str  # "sqlite" or "postgresql"
    url: str  # as given (may carry a password)
    path: str | None = None  # sqlite file path, ":memory:" is refused

    @property
    def redacted(self) -> str:
        return redact(self.url)

    def _postgres(self, scheme: str) -> str:
        """The URL under ``scheme``, user and password percent-encoded as they were parsed
        (a password holding '@' reaches libpq whole), and the '//' kept when there is no
        host (the libpq Unix-socket form ``postgresql:///db?host=/run/postgresql``)."""
        parts = urlsplit(self.url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user, colon, password = userinfo.partition(":")
            userinfo = quote(unquote(user), safe="")
            if colon:
                userinfo += ":" + quote(unquote(password), safe="")
            netloc = f"{userinfo}@{host}"
        url = f"{scheme}://{netloc}{parts.path}"
        if parts.query:
            url += f"?{parts.query}"
        return url

    @property
    def libpq(self) -> str:
        """The URL in the form psycopg accepts (no SQLAlchemy driver suffix)."""
        return self._postgres("postgresql")

    @property
    def sqlalchemy(self) -> str:
        if self.dialect == "sqlite":
            return f"sqlite:///{self.path}"
        return self._postgres("postgresql+psycopg")


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
                f"SQLite database URL {redact(url)!r} needs a file path (an in-memory database would "
                "not survive a crash, and other processes could not see it)."
            )
        return DatabaseURL("sqlite", url, path)
    if scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+"):
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 - validates the port
        except ValueError:
            raise ConfigurationError(
                f"Malformed database URL {redact(url)!r}: bad port (percent-encode a "
                "password's special characters: / as %2F, @ as %40, ? as %3F)"
            ) from None
        if not parts.hostname and "host=" not in parts.query:
            raise ConfigurationError(f"Malformed database URL {redact(url)!r}: no host")
        return DatabaseURL("postgresql", url)
    raise ConfigurationError(
        f"Unsupported database URL {redact(url)!r}: use sqlite:///… or postgresql://…"
    )
