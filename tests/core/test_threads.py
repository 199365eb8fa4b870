"""The engine's workflow thread pool: daemon threads, bounded, the standard pool's contract."""

from __future__ import annotations

import threading

import pytest

from durable_core.threads import WorkerPool


def test_runs_calls_on_at_most_max_workers_daemon_threads():
    pool = WorkerPool(3, thread_name_prefix="t")
    gate = threading.Event()
    names: set[str] = set()

    def work(i: int) -> int:
        names.add(threading.current_thread().name)
        assert threading.current_thread().daemon
        gate.wait(10)
        return i * 2

    futures = [pool.submit(work, i) for i in range(10)]
    gate.set()
    assert [f.result(timeout=10) for f in futures] == [i * 2 for i in range(10)]
    assert 1 <= len(names) <= 3
    pool.shutdown(wait=True)


def test_exceptions_reach_the_future_and_cancelled_work_never_runs():
    pool = WorkerPool(1)
    gate = threading.Event()
    ran: list[int] = []

    def boom() -> None:
        raise KeyError("x")

    assert isinstance(pool.submit(boom).exception(timeout=10), KeyError)
    running = threading.Event()

    def hold() -> bool:
        running.set()
        return gate.wait(10)

    first = pool.submit(hold)
    assert running.wait(10)
    queued = [pool.submit(ran.append, i) for i in range(5)]
    pool.shutdown(wait=False, cancel_futures=True)
    gate.set()
    assert first.result(timeout=10) is True
    assert all(f.cancelled() for f in queued) and ran == []
    with pytest.raises(RuntimeError):
        pool.submit(ran.append, 9)
