"""In-process instrumentation that workflow bodies call to report when things happened.

Timestamps are ``time.perf_counter()`` readings taken inside the workflow's own code, in the
same process as the driver: that is the only clock that can tell "the workflow's last
statement ran" from "handle.result() returned in the caller". Each system's workflow
definitions call these functions, so both systems are instrumented identically.

State is module-global because the workflow functions must be module-level (both
libraries register them by name at import time); each benchmark runs in its own
subprocess, and :func:`reset` clears everything between workloads.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

_lock = threading.Lock()
_stamps: dict[tuple[int, str], float] = {}
_events: defaultdict[tuple[int, str], threading.Event] = defaultdict(threading.Event)
_done_count = 0
_done_target = 0
_last_done_key: int | None = None
_all_done = threading.Event()


def reset(expect_done: int = 0) -> None:
    """Forget all stamps and arm :func:`wait_all_done` for ``expect_done`` completions."""
    global _done_count, _done_target, _last_done_key
    with _lock:
        _stamps.clear()
        _events.clear()
        _done_count = 0
        _done_target = expect_done
        _last_done_key = None
        _all_done.clear()


def stamp(key: int, what: str) -> None:
    """Record ``perf_counter()`` for (key, what) and wake anyone waiting on it."""
    now = time.perf_counter()
    with _lock:
        _stamps[(key, what)] = now
        event = _events[(key, what)]
    event.set()


def get(key: int, what: str) -> float:
    with _lock:
        return _stamps[(key, what)]


def wait(key: int, what: str, timeout: float) -> float:
    """Block until (key, what) is stamped; return the stamp."""
    with _lock:
        event = _events[(key, what)]
    if not event.wait(timeout):
        raise TimeoutError(f"probe {what!r} for key {key} not reached within {timeout}s")
    return get(key, what)


def done(key: int) -> None:
    """Stamp (key, "done") and count it; the armed N-th completion fires the event."""
    global _done_count, _last_done_key
    stamp(key, "done")
    with _lock:
        _done_count += 1
        _last_done_key = key
        if _done_target and _done_count >= _done_target:
            _all_done.set()


def wait_all_done(timeout: float) -> int:
    """Block until the armed number of completions happened; return the last key done."""
    if not _all_done.wait(timeout):
        with _lock:
            count = _done_count
        raise TimeoutError(f"only {count}/{_done_target} workflows finished within {timeout}s")
    with _lock:
        assert _last_done_key is not None
        return _last_done_key
