"""Group commit: writes requested while another is in flight ride together in the next one.

A worker draining a backlog finishes many workflows at about the same time, each with a
statement and a commit of its own. Here one write is in flight at a time: a request made
while none is goes out at once, alone (no added latency); requests made meanwhile wait, and
when the write in flight returns, the first of them writes all of them in one statement
(``write_batch``), then hands on to whoever arrived during its own write. Every caller
returns only once the statement holding its own item has returned, with its own item's
result (or that statement's exception), and each caller's thread writes at most the one
batch its own item is in. Sync workflows and async ones (whose store calls run in worker
threads) take the same path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

_I = TypeVar("_I")
_R = TypeVar("_R")


class _Request(Generic[_I, _R]):
    __slots__ = ("item", "key", "result", "error", "wake", "batch")

    def __init__(self, item: _I, key: Hashable) -> None:
        self.item = item
        self.key = key
        self.result: _R | None = None
        self.error: BaseException | None = None
        # Held while the request waits; released once it is written, or it is to write.
        self.wake: threading.Lock | None = None
        # Set when this request's thread is to write a batch (it is the batch's first).
        self.batch: list[_Request[_I, _R]] | None = None


class GroupCommit(Generic[_I, _R]):
    """Writes items through ``write_batch(items) -> results`` (one result per item, in
    order), batching those that arrive while a write is in flight, at most ``max_batch`` at
    once. Two items with the same ``key`` never share a batch (the later waits for the next):
    a batch statement then never names one row twice."""

    def __init__(
        self,
        write_batch: Callable[[Sequence[_I]], Sequence[_R]],
        key: Callable[[_I], Hashable],
        max_batch: int = 256,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch!r}")
        self._write_batch = write_batch
        self._key = key
        self.max_batch = max_batch
        self._mutex = threading.Lock()
        self._busy = False
        self._waiting: list[_Request[_I, _R]] = []

    @property
    def waiting(self) -> int:
        """Requests waiting for the write in flight to return (they go in the next batch)."""
        return len(self._waiting)

    def write(self, item: _I) -> _R:
        """Write ``item`` (with others that are waiting, if a write is in flight) and return
        its result; raises what the statement that held it raised."""
        request: _Request[_I, _R] = _Request(item, self._key(item))
        with self._mutex:
            if self._busy:
                request.wake = threading.Lock()
                request.wake.acquire()
                self._waiting.append(request)
            else:
                self._busy = True
        if request.wake is not None:
            request.wake.acquire()  # released by the thread that wrote it, or chose it to write
            if request.batch is None:
                return _outcome(request)
            batch = request.batch
        else:
            batch = [request]
        self._write(batch)
        return _outcome(request)

    def _write(self, batch: list[_Request[_I, _R]]) -> None:
        try:
            results = self._write_batch([r.item for r in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} got {len(results)} results")
            for request, result in zip(batch, results, strict=True):
                request.result = result
        except BaseException as exc:
            for request in batch:
                request.error = exc
        finally:
            following = self._take_next()
            if following:  # the next statement first, then the callers of this one
                following[0].batch = following
                _release(following[0])
            for request in batch[1:]:
                _release(request)

    def _take_next(self) -> list[_Request[_I, _R]]:
        """The next batch, in arrival order; none left: no write is in flight any more."""
        with self._mutex:
            if not self._waiting:
                self._busy = False
                return []
            batch: list[_Request[_I, _R]] = []
            keys: set[Hashable] = set()
            later: list[_Request[_I, _R]] = []
            for request in self._waiting:
                if len(batch) < self.max_batch and request.key not in keys:
                    keys.add(request.key)
                    batch.append(request)
                else:
                    later.append(request)
            self._waiting = later
            return batch


def _release(request: _Request[_I, _R]) -> None:
    if request.wake is not None:
        request.wake.release()


def _outcome(request: _Request[_I, _R]) -> _R:
    if request.error is not None:
        raise request.error
    return request.result  # type: ignore[return-value]
