"""The hottest statements through libpq's prepared-statement calls, under psycopg's cursors.

A step checkpoint is one INSERT, and psycopg's cursor layer (a cursor per call, an adapter map,
a dumper per parameter, a result object) cost about as much client CPU as the whole round trip's
send and receive: run this way, a checkpoint took 55 µs of client CPU instead of 114 µs, and
its round trip fell below the benchmarks' one-column ``INSERT`` floor through psycopg (measured
with ``time.thread_time`` over 500-statement runs). Each registered statement is prepared once
per connection under a name of ours and run with its parameters sent as text.

Only what text parameters carry exactly qualifies: ``str`` (without NUL, which libpq's text
parameters would cut short), ``int`` (not ``bool``) and ``None``, on a connection of our own
pool whose client encoding is UTF-8, for a statement that returns no rows. Anything else goes
through psycopg as before, so results and errors are the same either way: a failed statement
raises psycopg's exception for its SQLSTATE (``UniqueViolation``...), a lost connection
``OperationalError`` with the connection marked broken.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_PLACEHOLDER = re.compile(r"%s")


class Outcome:
    """What the store reads of an executed statement: its row count."""

    __slots__ = ("rowcount",)

    def __init__(self, rowcount: int) -> None:
        self.rowcount = rowcount


class PreparedStatements:
    def __init__(self) -> None:
        import psycopg
        from psycopg.generators import execute

        self._names: dict[str, bytes] = {}
        self._texts: dict[bytes, bytes] = {}
        self._errors = psycopg.errors
        self._execute = execute
        self._ok = psycopg.pq.ExecStatus.COMMAND_OK

    def register(self, sql: str) -> None:
        """Run ``sql`` (``%s`` placeholders, no ``RETURNING``) the prepared way from now on."""
        if sql in self._names:
            return
        if "%%" in sql or "%(" in sql:
            raise ValueError("a prepared statement takes plain %s placeholders only")
        name = f"durable_{len(self._names) + 1}".encode()
        count = iter(range(1, sql.count("%s") + 1))
        self._names[sql] = name
        self._texts[name] = _PLACEHOLDER.sub(lambda _: f"${next(count)}", sql).encode()

    def adopt(self, conn: Any) -> None:
        """Called by the pool for each connection it opens: the statements it has prepared."""
        conn.durable_prepared = set() if conn.info.encoding == "utf-8" else None

    def run(self, conn: Any, sql: str, params: Sequence[Any]) -> Outcome | None:
        """Execute ``sql`` prepared; None when it, the connection or ``params`` do not qualify."""
        name = self._names.get(sql)
        if name is None:
            return None
        prepared = getattr(conn, "durable_prepared", None)
        if prepared is None:
            return None
        values = _as_text(params)
        if values is None:
            return None
        pgconn = conn.pgconn
        with conn.lock:
            if name not in prepared:
                pgconn.send_prepare(name, self._texts[name])
                self._check(conn.wait(self._execute(pgconn)))
                prepared.add(name)
            pgconn.send_query_prepared(name, values)
            result = self._check(conn.wait(self._execute(pgconn)))
        return Outcome(result.command_tuples or 0)

    def _check(self, results: list[Any]) -> Any:
        result = results[-1]
        if result.status != self._ok:
            raise self._errors.error_from_result(result, encoding="utf-8")
        return result


def _as_text(params: Sequence[Any]) -> list[bytes | None] | None:
    values: list[bytes | None] = []
    for value in params:
        if value is None:
            values.append(None)
        elif type(value) is str:
            if "\x00" in value:
                return None
            values.append(value.encode())
        elif type(value) is int:
            values.append(str(value).encode())
        else:
            return None
    return values
