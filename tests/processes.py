"""Processes the tests start (servers, workers, crash targets): none outlives its test.

``spawn`` starts each one in a session of its own, so it and everything it forks (uvicorn's
worker processes, runserver's autoreloader child) form one process group that is signalled
and killed whole, and a Ctrl-C in the terminal reaches only pytest, which then cleans up.
The cleanup happens three ways:

* ``stop``/``kill`` in the test's own ``finally`` (SIGTERM to the group, SIGKILL after a
  timeout, then SIGKILL to whatever of the group is left);
* the autouse fixture in ``tests/conftest.py`` kills every group a test spawned and left
  running, when the test ends, fails or is interrupted (pytest tears fixtures down on
  KeyboardInterrupt too), and ``atexit`` does the same for anything left at exit;
* a reaper process, in its own session, holds a pipe from pytest: when pytest dies without
  cleaning up (SIGKILL, a job's process group killed) the pipe closes and the reaper kills
  the groups still registered. (Uvicorn trees once ran for 45 minutes after an interrupted
  run: started in their own session, they did not die with pytest's process group.)
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

_REAPER = r"""
import os, signal, sys
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(sig, signal.SIG_IGN)
groups = set()
for line in sys.stdin:
    pgid = int(line)
    if pgid > 0:
        groups.add(pgid)
    else:
        groups.discard(-pgid)
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""

_lock = threading.Lock()
_live: dict[int, subprocess.Popen[Any]] = {}
_reaper: subprocess.Popen[str] | None = None


def _tell_reaper(line: int) -> None:
    global _reaper
    if _reaper is None:
        _reaper = subprocess.Popen(
            [sys.executable, "-c", _REAPER],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
    assert _reaper.stdin is not None
    _reaper.stdin.write(f"{line}\n")
    _reaper.stdin.flush()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a server to spawn)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def spawn(args: Sequence[str], **popen: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen(args, **popen)`` in a new session (its own process group),
    registered for cleanup."""
    with _lock:
        proc = subprocess.Popen(args, start_new_session=True, **popen)
        _live[proc.pid] = proc
        _tell_reaper(proc.pid)
    return proc


def signal_group(proc: subprocess.Popen[Any], sig: int) -> None:
    """Send ``sig`` to the process and everything in its group (gone already: nothing)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _forget(proc: subprocess.Popen[Any]) -> None:
    signal_group(proc, signal.SIGKILL)  # stragglers of a leader that exited on its own
    with _lock:
        if _live.pop(proc.pid, None) is not None and _reaper is not None:
            try:
                _tell_reaper(-proc.pid)
            except (BrokenPipeError, ValueError):
                pass


def kill(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the whole group (a crash of the process and its children) and reap it."""
    signal_group(proc, signal.SIGKILL)
    proc.wait()
    _forget(proc)


def stop(*procs: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """SIGTERM each group (all at once), wait up to ``timeout`` seconds for the processes,
    then SIGKILL the groups: nothing of them is left running after. Exit statuses are in
    each ``returncode``."""
    for proc in procs:
        if proc.poll() is None:
            signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            signal_group(proc, signal.SIGKILL)
            proc.wait()
        _forget(proc)


def spawned() -> set[int]:
    """The PIDs of the registered processes (the fixture compares before and after a test)."""
    with _lock:
        return set(_live)


def kill_all(pids: set[int] | None = None) -> None:
    """Kill the groups of the registered processes (of ``pids`` only, when given)."""
    with _lock:
        procs = [p for pid, p in _live.items() if pids is None or pid in pids]
    for proc in procs:
        kill(proc)


atexit.register(kill_all)
