"""Stop, start and restart the machine's PostgreSQL server (shared by everything on this
machine: keep it down briefly, and always bring it back)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator

import psycopg

from tests.conftest import PG_URL


def _cluster() -> list[str]:
    versions = sorted(os.listdir("/etc/postgresql"))
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def is_up() -> bool:
    try:
        with psycopg.connect(PG_URL, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def _wait(up: bool, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while is_up() != up:
        if time.monotonic() > deadline:
            raise AssertionError(f"PostgreSQL still {'down' if up else 'up'} after {timeout}s")
        time.sleep(0.1)


def stop() -> float:
    """Stop the server (fast mode: open transactions roll back, connections drop)."""
    started = time.monotonic()
    subprocess.run([*_cluster(), "stop", "--mode", "fast"], check=True, timeout=60)
    _wait(False, 30)
    return time.monotonic() - started


def start() -> float:
    started = time.monotonic()
    if not is_up():
        subprocess.run([*_cluster(), "start"], check=True, timeout=60)
    _wait(True, 60)
    return time.monotonic() - started


def restart() -> float:
    """Restart the server; returns how long it was unreachable for, at most, in seconds."""
    started = time.monotonic()
    try:
        stop()
    finally:
        start()
    return time.monotonic() - started


@contextlib.contextmanager
def restored() -> Iterator[None]:
    """Whatever happens inside, PostgreSQL is running again afterwards."""
    try:
        yield
    finally:
        start()
