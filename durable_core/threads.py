"""The engine's pool of workflow threads.

Why not ``concurrent.futures.ThreadPoolExecutor``: the interpreter joins its threads at exit,
so a workflow whose step is still running when the engine's shutdown timeout passes would
hold the process for as long as that step takes (a lifespan that shut down with a 30 s step
running exited 30 s later). The engine promises a prompt exit; a workflow cut off that way
stays PENDING and is recovered, as after a crash. So these threads are daemons: the same
queue-and-idle-semaphore design as the standard pool, without the join at exit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = ["WorkerPool"]

_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class WorkerPool:
    """Runs submitted calls on up to ``max_workers`` daemon threads, started as needed."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "durable-worker") -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers!r}")
        self.max_workers = max_workers
        self._prefix = thread_name_prefix
        self._items: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shut_down = False
        self._detached: set[threading.Thread] = set()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Queue ``fn(*args, **kwargs)``; ``RuntimeError`` after :meth:`shutdown`."""
        with self._lock:
            if self._shut_down:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future: Future[Any] = Future()
            self._items.put((future, fn, args, kwargs))
            if not self._idle.acquire(timeout=0) and len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._work,
                    name=f"{self._prefix}-{len(self._threads)}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
            return future

    def _work(self) -> None:
        while True:
            item = self._items.get()
            if item is None:
                self._items.put(None)  # wake the next thread: they all stop
                return
            future, fn, args, kwargs = item
            del item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del future, fn, args, kwargs
            if threading.current_thread() in self._detached:
                with self._lock:
                    self._detached.discard(threading.current_thread())
                return  # its place in the pool was given to another thread
            self._idle.release()

    def detach_current(self) -> bool:
        """Take the calling pool thread out of the pool for a long wait: the pool may start
        another in its place (at once if work is queued), and this one ends when its current
        call returns. False when called off the pool or after shutdown."""
        me = threading.current_thread()
        with self._lock:
            if me in self._detached:
                return True  # taken out by an earlier wait of the same call
            if self._shut_down or me not in self._threads:
                return False
            self._threads.remove(me)
            self._detached.add(me)
            if not self._items.empty():
                thread = threading.Thread(
                    target=self._work, name=f"{self._prefix}-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        return True

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Take no more work; with ``cancel_futures`` drop what has not started; with ``wait``
        join the threads (which finish what they run)."""
        with self._lock:
            self._shut_down = True
            if cancel_futures:
                while True:
                    try:
                        item = self._items.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        item[0].cancel()
            self._items.put(None)
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()
