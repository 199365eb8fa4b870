"""Fault tools other than the proxy and the cluster's own stop/start: freezing a process,
holding a table lock, using up every connection slot, terminating server backends."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator

import psycopg


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[float]:
    """SIGSTOP ``pid`` inside the block (as a GC pause, a VM stall or a suspended laptop would
    stop it) and SIGCONT it afterwards, whatever happens. Yields the time it was stopped."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield time.time()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


class TableLock:
    """A connection holding ``LOCK TABLE … IN <mode> MODE`` in an open transaction until
    :meth:`release` (or after ``seconds``), in a thread of its own."""

    def __init__(self, url: str, table: str, mode: str = "ACCESS EXCLUSIVE"):
        self.url, self.table, self.mode = url, table, mode
        self.acquired = threading.Event()
        self._release = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._hold, name="faultlab-lock", daemon=True)
        self.held_seconds: float | None = None

    def _hold(self) -> None:
        try:
            with psycopg.connect(self.url, connect_timeout=10) as conn:
                conn.execute(f"LOCK TABLE {self.table} IN {self.mode} MODE")
                started = time.monotonic()
                self.acquired.set()
                self._release.wait()
                self.held_seconds = time.monotonic() - started
                conn.rollback()
        except BaseException as exc:  # reported by acquire()/release()
            self._error = exc
            self.acquired.set()

    def acquire(self, timeout: float = 30) -> TableLock:
        self._thread.start()
        if not self.acquired.wait(timeout):
            raise TimeoutError(f"lock on {self.table} not acquired in {timeout}s")
        if self._error is not None:
            raise self._error
        return self

    def release(self) -> float:
        self._release.set()
        self._thread.join(30)
        if self._error is not None:
            raise self._error
        return self.held_seconds or 0.0


@contextlib.contextmanager
def table_locked(url: str, table: str, mode: str = "ACCESS EXCLUSIVE") -> Iterator[TableLock]:
    lock = TableLock(url, table, mode).acquire()
    try:
        yield lock
    finally:
        lock.release()


@contextlib.contextmanager
def connections_exhausted(url: str, limit: int = 1000) -> Iterator[list[psycopg.Connection]]:
    """Open connections until the server refuses more ("too many clients"), hold them inside
    the block, close them afterwards. Yields the held connections."""
    held: list[psycopg.Connection] = []
    try:
        while len(held) < limit:
            try:
                held.append(psycopg.connect(url, connect_timeout=5, autocommit=True))
            except psycopg.OperationalError as exc:
                if "too many clients" in str(exc) or "connection slots" in str(exc):
                    break
                raise
        yield held
    finally:
        for conn in held:
            with contextlib.suppress(Exception):
                conn.close()


def terminate_backends(admin: psycopg.Connection, dbname: str) -> int:
    """``pg_terminate_backend`` every other connection to ``dbname``; returns how many."""
    rows = admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (dbname,),
    ).fetchall()
    return sum(1 for (ok,) in rows if ok)
