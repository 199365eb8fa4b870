"""One thread that fires callbacks at wall-clock times: durable sleeps parked off their thread
wake here, so ten thousand sleeping workflows cost ten thousand heap entries, not threads."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable

from .clock import Clock, DatabaseClock

log = logging.getLogger("durable_core.timers")


class Timers:
    def __init__(self, clock: Clock | None = None, name: str = "durable-timers") -> None:
        self.clock: Clock = clock if clock is not None else DatabaseClock()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        # Held while a callback is taken and run, so run_due() returns only after every
        # callback due by then has run, on whichever thread took it.
        self._firing = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        return len(self._heap)

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` at fleet time ``when`` (epoch seconds, ``clock.time()``) on the
        timer thread."""
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._counter), callback))
            if self._heap[0][2] is callback:
                self._cond.notify()

    def next_due(self) -> float | None:
        """The fleet time of the earliest pending callback, if any."""
        with self._cond:
            return self._heap[0][0] if self._heap else None

    def run_due(self) -> int:
        """Run, in this thread, every callback due by the clock's current time (a test clock
        moved forward calls it); returns how many ran."""
        ran = 0
        with self._firing:
            while (callback := self._pop_due()) is not None:
                self._call(callback)
                ran += 1
        return ran

    def wake(self) -> None:
        """Re-read the clock now (it was moved)."""
        with self._cond:
            self._cond.notify()

    def _pop_due(self) -> Callable[[], None] | None:
        with self._cond:
            if self._heap and self._heap[0][0] <= self.clock.time():
                return heapq.heappop(self._heap)[2]
        return None

    @staticmethod
    def _call(callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:
            log.exception("timer callback failed")

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=2)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if self._heap:
                        delay = self._heap[0][0] - self.clock.time()
                        if delay <= 0:
                            break
                        self._cond.wait(delay)
                    else:
                        self._cond.wait()
                if self._stopped:
                    return
            with self._firing:
                callback = self._pop_due()
                if callback is not None:
                    self._call(callback)
