"""Counting the statements a store runs: the tests that pin the hot path's round trips and
the plans of its statements share this one capture."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def captured(store: Any, *, this_thread: bool = False) -> Iterator[list[tuple[str, tuple]]]:
    """The statements ``store`` runs inside the block, as ``(sql, params)``; with
    ``this_thread``, only this thread's (not an engine's heartbeat, queue or timer threads)."""
    seen: list[tuple[str, tuple]] = []
    original = store.execute
    me = threading.get_ident()

    def execute(conn: Any, sql: str, params: Any = ()) -> Any:
        if not this_thread or threading.get_ident() == me:
            seen.append((sql, tuple(params)))
        return original(conn, sql, params)

    store.execute = execute
    try:
        yield seen
    finally:
        store.execute = original
