"""The SQLite system database: stdlib sqlite3, WAL, a busy timeout, one connection per store.

SQLite allows one writer at a time, so a single connection behind a lock is both the simplest
and the fastest arrangement inside one process; other processes share the file through WAL.
Housekeeping and listing reads (``read_all``) use a second connection with its own lock: under
WAL a reader never blocks the writer, so a scan never holds up a step's checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from ..errors import DatabaseUnavailable, StoreClosed
from .base import SQLStore

log = logging.getLogger("durable_core.store")

_S = TypeVar("_S", bound="SQLiteStore")
_P = ParamSpec("_P")
_T = TypeVar("_T")


def _locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _give_up(store: SQLiteStore, exc: sqlite3.OperationalError) -> None:
    """Past the store's ``give_up_at`` (a shutdown's timeout), stop waiting for the lock."""
    if time.monotonic() >= store.give_up_at:
        raise DatabaseUnavailable(f"SQLite database {store.path!r}: {exc}") from None


def _retry_locked(fn: Callable[Concatenate[_S, _P], _T]) -> Callable[Concatenate[_S, _P], _T]:
    """Retry a whole operation while another process holds the write lock past busy_timeout."""

    def wrapper(store: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        delay = 0.05
        for attempt in range(200):
            try:
                return fn(store, *args, **kwargs)
            except sqlite3.OperationalError as exc:
                if not _locked(exc):
                    raise
                _give_up(store, exc)
                if attempt % 20 == 0:
                    log.warning("SQLite database is locked; retrying (%s)", exc)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        return fn(store, *args, **kwargs)

    return wrapper


class SQLiteStore(SQLStore):
    dialect = "sqlite"
    # Every process sharing the file runs on its host, so the host's clock is the database's;
    # read it through SQLite, not through Python, so a patched or skewed process clock in
    # one process does not leak into the fleet's time base.
    database_time_sql = "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"

    def __init__(self, path: str, busy_timeout_ms: int = 10_000):
        from ..clock import DatabaseClock

        self.path = path
        self.clock = DatabaseClock()
        self.busy_timeout_ms = busy_timeout_ms
        self._lock = threading.RLock()
        self._conn = self._connect()
        self._enable_wal()
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._in_tx = False
        self._tx_thread: int | None = None
        self._closed = False
        self._sql_cache: dict[str, str] = {}
        self._read_lock = threading.Lock()
        self._read_conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=self.busy_timeout_ms / 1000,
        )
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        return conn

    def read_all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        # Inside this thread's own transaction (or the caller's, joined) a read must see its
        # uncommitted writes; an in-memory database is private to its connection. Otherwise:
        # the read connection, which never waits for the store lock (a thread holding it may
        # be waiting for the file's write lock, held by this very thread's Django atomic()).
        if (
            self._tx_thread == threading.get_ident()
            or self.path in ("", ":memory:")
            or self.joined_connection() is not None
        ):
            return self.fetchall(sql, params)
        with self._read_lock:
            if self._read_conn is None:
                self._read_conn = self._connect()
            return list(self.execute(self._read_conn, sql, params).fetchall())

    def _sql(self, sql: str) -> str:
        cached = self._sql_cache.get(sql)
        if cached is None:
            cached = self._sql_cache[sql] = sql.replace("%s", "?")
        return cached

    def yield_to_writers(self) -> None:
        # Python's lock hands itself back to the releasing thread: a pause lets a checkpoint
        # waiting for it take it between two batches.
        time.sleep(0.001)

    def workflows_by(self, index: str) -> str:
        return f"durable_workflows INDEXED BY {index}"

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        joined = self.joined_connection()
        if joined is not None:
            yield joined
            return
        with self._lock:
            self._check_open()
            yield self._conn

    # Statements on the main connection in autocommit: a "database is locked" past the busy
    # timeout is retried with the store lock released between attempts, so the threads that
    # only read (or that run in the caller's joined transaction) are never held up behind a
    # writer waiting for another connection's write lock.
    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        rowcount: int = self._autocommit(sql, params, lambda cursor: cursor.rowcount)
        return rowcount

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._autocommit(sql, params, lambda cursor: cursor.fetchone())

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        rows: list[Any] = self._autocommit(sql, params, lambda cursor: list(cursor.fetchall()))
        return rows

    def _autocommit(self, sql: str, params: Any, read: Any) -> Any:
        joined = self.joined_connection()
        if joined is not None:
            return read(self.execute(joined, sql, params))
        delay = 0.05
        for attempt in range(201):
            with self._lock:
                self._check_open()
                try:
                    return read(self.execute(self._conn, sql, params))
                except sqlite3.OperationalError as exc:
                    if not _locked(exc) or self._in_tx or attempt == 200:
                        raise
                    error = exc
            _give_up(self, error)
            if attempt % 20 == 0:
                log.warning("SQLite database is locked; retrying (%s)", error)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed(f"SQLite database {self.path!r} was closed (the engine shut down)")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        joined = self.joined_connection()
        if joined is not None:  # the caller's open transaction (Django's atomic())
            yield joined
            return
        nested = self._begin()  # returns holding the store lock
        try:
            if nested:  # join this thread's outer transaction
                yield self._conn
                return
            self._in_tx = True
            self._tx_thread = threading.get_ident()
            try:
                yield self._conn
            except BaseException:
                self._in_tx = False
                self._tx_thread = None
                self._conn.execute("ROLLBACK")
                raise
            self._in_tx = False
            self._tx_thread = None
            self._commit()
        finally:
            self._lock.release()

    @_retry_locked
    def _enable_wal(self) -> None:
        # Switching a fresh file to WAL needs a moment of exclusive access, and SQLite answers
        # "database is locked" at once (no busy wait) while another process opening the same
        # file holds it: a second process launching at the same time waits its turn.
        self._conn.execute("PRAGMA journal_mode=WAL")

    def _begin(self) -> bool:
        """Take the store lock and BEGIN IMMEDIATE (True: this thread is in a transaction
        already, join it). While another connection holds the file's write lock, the store
        lock is released between attempts: held across the retries it would stop every other
        thread of the process, including one whose own transaction (a Django ``atomic()``
        on the same file) is what the BEGIN waits for, which then never commits."""
        delay = 0.05
        for attempt in range(201):
            self._lock.acquire()
            try:
                self._check_open()
                if self._in_tx:
                    return True
                self._conn.execute("BEGIN IMMEDIATE")
                return False
            except sqlite3.OperationalError as exc:
                self._lock.release()
                if not _locked(exc) or attempt == 200:
                    raise
                error = exc
            except BaseException:
                self._lock.release()
                raise
            _give_up(self, error)
            if attempt % 20 == 0:
                log.warning("SQLite database is locked; retrying (%s)", error)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    def _commit(self) -> None:
        while True:
            try:
                self._conn.execute("COMMIT")
                return
            except sqlite3.OperationalError as exc:
                if not _locked(exc):
                    raise
                _give_up(self, exc)
                time.sleep(0.05)

    def execute(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        if conn is self._conn:  # retried by the caller (_autocommit, _begin), outside the lock
            return conn.execute(self._sql(sql), params)
        return self._execute_retrying(conn, self._sql(sql), params)

    @_retry_locked
    def _execute_retrying(self, conn: Any, sql: str, params: Sequence[Any]) -> Any:
        return conn.execute(sql, params)

    def data_version(self) -> int:
        """Changes whenever another connection (another process) commits to the file."""
        with self._lock:
            version: int = self._conn.execute("PRAGMA data_version").fetchone()[0]
            return version

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._conn.close()
        with self._read_lock:
            if self._read_conn is not None:
                self._read_conn.close()
                self._read_conn = None

    def schema_version(self) -> int | None:
        row = self.fetchone(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'durable_schema'"
        )
        if not row:
            return None
        version: int | None = self.fetchone("SELECT MAX(version) FROM durable_schema")[0]
        return version
