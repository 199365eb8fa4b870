"""In-process wake-ups: waiters block on a key until it is signalled, with a version counter so
a signal that arrives between "check the database" and "start waiting" is never missed.

Keys are ``(kind, id)``: ``("m", workflow_id)`` a message arrived, ``("e", id)`` an event was
set, ``("s", id)`` a stream grew, ``("w", id)`` a workflow's status changed, ``("q", name)`` a
queue has work. On SQLite the store signals after its own commits; on PostgreSQL a LISTEN
connection turns other processes' NOTIFYs into the same signals.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("durable_core.wakeups")

Key = tuple[str, str]


class Notifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[Key, int] = defaultdict(int)
        self._epoch = 0
        self._events: dict[Key, list[threading.Event]] = defaultdict(list)
        self._futures: dict[Key, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]]] = (
            defaultdict(list)
        )
        self._callbacks: dict[Key, list[Callable[[], None]]] = defaultdict(list)
        self.listeners: list[Callable[[str, str], None]] = []
        #: Whether this process wants the fleet's queue wake-ups ("q"): it serves queues or
        #: shows them live. On PostgreSQL they come on a channel of their own, heard only
        #: once this is set (a process that only enqueues would get one per enqueue).
        self.listen_queues = False

    def version(self, key: Key) -> int:
        return self._versions.get(key, 0) + self._epoch

    def notify(self, kind: str, ident: str) -> None:
        key = (kind, ident)
        with self._lock:
            self._versions[key] += 1
            events = self._events.pop(key, ())
            futures = self._futures.pop(key, ())
            callbacks = self._callbacks.pop(key, ())
        self._release(events, futures, callbacks)
        for listener in self.listeners:
            try:
                listener(kind, ident)
            except Exception:
                log.exception("wake-up listener failed")

    def notify_everything(self) -> None:
        """Wake every waiter (after a lost LISTEN connection, say): they re-check the database."""
        with self._lock:
            self._epoch += 1
            events = [e for lst in self._events.values() for e in lst]
            futures = [f for lst in self._futures.values() for f in lst]
            callbacks = [c for lst in self._callbacks.values() for c in lst]
            self._events.clear()
            self._futures.clear()
            self._callbacks.clear()
        self._release(events, futures, callbacks)

    def wake_waiters(self) -> None:
        """Wake the threads and tasks waiting on any key, but not parked workflows: the
        database changed somewhere, and waiters re-check it (parked workflows have their own
        safety poll, and waking thousands of them at once would replay them all)."""
        with self._lock:
            self._epoch += 1
            events = [e for lst in self._events.values() for e in lst]
            futures = [f for lst in self._futures.values() for f in lst]
            self._events.clear()
            self._futures.clear()
        self._release(events, futures, ())

    @staticmethod
    def _release(
        events: Iterable[threading.Event],
        futures: Iterable[tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]],
        callbacks: Iterable[Callable[[], None]],
    ) -> None:
        for event in events:
            event.set()
        for loop, future in futures:
            loop.call_soon_threadsafe(_resolve, future)
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("wake-up callback failed")

    def wait(self, keys: list[Key], seen: list[int], timeout: float) -> bool:
        """Block until one of ``keys`` moves past its ``seen`` version or ``timeout`` passes."""
        event = threading.Event()
        with self._lock:
            if any(self.version(k) != v for k, v in zip(keys, seen, strict=True)):
                return True
            for k in keys:
                self._events[k].append(event)
        fired = event.wait(max(timeout, 0))
        if not fired:
            with self._lock:
                for k in keys:
                    lst = self._events.get(k)
                    if lst and event in lst:
                        lst.remove(event)
                        if not lst:
                            del self._events[k]
        return fired

    async def wait_async(self, keys: list[Key], seen: list[int], timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        with self._lock:
            if any(self.version(k) != v for k, v in zip(keys, seen, strict=True)):
                return True
            for k in keys:
                self._futures[k].append((loop, future))
        try:
            await asyncio.wait_for(asyncio.shield(future), max(timeout, 0))
            return True
        except TimeoutError:
            with self._lock:
                for k in keys:
                    lst = self._futures.get(k)
                    if lst and (loop, future) in lst:
                        lst.remove((loop, future))
                        if not lst:
                            del self._futures[k]
            return False

    def on_signal(self, keys: list[Key], seen: list[int], callback: Callable[[], None]) -> None:
        """Call ``callback`` once (possibly more than once across keys) when a key moves."""
        with self._lock:
            moved = any(self.version(k) != v for k, v in zip(keys, seen, strict=True))
            if not moved:
                for k in keys:
                    self._callbacks[k].append(callback)
        if moved:
            callback()


def _resolve(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(True)


# The schema holding the system tables that this connection's search_path finds.
_TABLES_SCHEMA = (
    "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.oid = to_regclass('durable_workflows')"
)


def listen_channel(conn: Any) -> str:
    """The channel the triggers of this connection's system tables notify (one per schema,
    so tenants in separate schemas of one database never receive each other's wake-ups)."""
    from .store.schema import notify_channel

    row = conn.execute(_TABLES_SCHEMA).fetchone()
    schema = row[0] if row else conn.execute("SELECT current_schema()").fetchone()[0]
    return notify_channel(schema or "public")


class PostgresListener:
    """One LISTEN connection per engine, turning NOTIFY payloads into local wake-ups."""

    def __init__(
        self, conninfo: str, notifier: Notifier, application_name: str = "durable"
    ) -> None:
        self.conninfo = conninfo
        self.application_name = application_name[:63]
        self.notifier = notifier
        self._stop = threading.Event()
        self._conn: Any = None
        self._thread = threading.Thread(target=self._loop, name="durable-listener", daemon=True)
        self.ready = threading.Event()

    def start(self) -> None:
        self._thread.start()
        self.ready.wait(5)

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None:
            try:
                conn.cancel_safe(timeout=1)
            except Exception:
                pass
        self._thread.join(timeout=3)

    def _loop(self) -> None:
        import psycopg
        import psycopg.sql

        from .store.schema import QUEUE_CHANNEL_SUFFIX

        delay = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self.conninfo, autocommit=True, application_name=self.application_name
                ) as conn:
                    self._conn = conn
                    channel = listen_channel(conn)
                    conn.execute(
                        psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel))
                    )
                    queues = False
                    self.ready.set()
                    self.notifier.notify_everything()
                    delay = 0.1
                    while not self._stop.is_set():
                        if self.notifier.listen_queues and not queues:
                            queues = True
                            name = psycopg.sql.Identifier(channel + QUEUE_CHANNEL_SUFFIX)
                            conn.execute(psycopg.sql.SQL("LISTEN {}").format(name))
                            self.notifier.notify_everything()  # what it may have missed
                        for note in conn.notifies(timeout=0.2):
                            kind, _, ident = note.payload.partition(":")
                            self.notifier.notify(kind, ident)
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.warning(
                    "LISTEN connection lost (%s); reconnecting in %.1fs", type(exc).__name__, delay
                )
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
            finally:
                self._conn = None


class SQLiteWatcher:
    """SQLite has no NOTIFY. Other processes' commits show up as a change of
    ``PRAGMA data_version`` on our connection (our own commits do not change it, and are
    signalled in-process already), so one thread polls that cheap pragma every
    ``interval`` seconds and wakes the waiters when it moves: a worker picks up work that a
    web process enqueued within tens of milliseconds instead of at the next safety poll."""

    def __init__(self, store: Any, notifier: Notifier, interval: float = 0.05) -> None:
        self.store = store
        self.notifier = notifier
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="durable-sqlite-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _loop(self) -> None:
        last = None
        while not self._stop.wait(self.interval):
            try:
                version = self.store.data_version()
            except Exception:  # a locked or closing database: try again next tick
                continue
            if last is not None and version != last:
                self.notifier.wake_waiters()
            last = version
