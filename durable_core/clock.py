"""The fleet's clock: one time base for every time that is compared across processes.

Leases, heartbeats, workflow deadlines, rate-limit windows, ``delay``/``not_before``, durable
sleep wake-ups and recv/get_event deadlines are written by one process and compared by
another. Comparing each host's own ``time.time()`` makes a host whose clock is 30 s behind
look dead to the others (its live work is adopted and run twice), and a host 30 s ahead
cancel another's ``timeout=`` workflow early. So every such time comes from a ``Clock``:
by default ``DatabaseClock``, the database server's clock read through this process's
monotonic clock. Tests substitute their own (``Engine(clock=...)``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "DatabaseClock"]


@runtime_checkable
class Clock(Protocol):
    """What the engine asks of a clock.

    ``now_ms``/``time`` are wall time on the fleet's shared time base (milliseconds /
    seconds since the epoch); ``monotonic`` measures local durations (timeouts of calls in
    this process). ``calibrate`` is given a function that reads the database's clock (epoch
    milliseconds); the engine calls it at launch and at every heartbeat.

    ``wait``/``wait_async`` are the waits whose length is a workflow's time (durable sleeps
    held in place, step retry delays): they end early when ``event`` is set (cancellation,
    shutdown). A test clock (``durable_core.testing.TestClock``) ends them when its time is
    advanced past them instead of after real seconds.
    """

    def now_ms(self) -> int: ...

    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    def seconds_until(self, when: float) -> float:
        """Seconds from now until the fleet time ``when`` (epoch seconds); 0 if past."""
        ...

    def calibrate(self, read_database_ms: Callable[[], int]) -> None: ...

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Block until ``event`` is set or ``seconds`` pass on this clock; True if it was set."""
        ...

    async def wait_async(self, event: threading.Event, seconds: float) -> bool:
        """``wait`` in an event loop (``event`` is polled at least once a second)."""
        ...


class DatabaseClock:
    """The database server's clock, followed locally through ``time.monotonic()``.

    Calibration reads the database's time and corrects it by half the round trip, giving an
    offset from this process's monotonic clock; between calibrations time advances with the
    monotonic clock, so a step of the host's wall clock (NTP, an operator) changes nothing.
    Until the first calibration it falls back to the host's wall clock.
    """

    #: A reading whose round trip took longer than this is too imprecise to replace a good one.
    max_round_trip = 1.0

    def __init__(self) -> None:
        self._offset = time.time() - time.monotonic()
        self._round_trip: float | None = None  # of the reading the offset came from
        self._lock = threading.Lock()

    @property
    def calibrated(self) -> bool:
        return self._round_trip is not None

    @property
    def offset(self) -> float:
        """Seconds to add to ``time.monotonic()`` to get the database's epoch time."""
        return self._offset

    def calibrate(self, read_database_ms: Callable[[], int]) -> None:
        before = time.monotonic()
        database_ms = read_database_ms()
        after = time.monotonic()
        round_trip = after - before
        with self._lock:
            if round_trip > self.max_round_trip and self._round_trip is not None:
                return  # keep the better reading we have
            self._offset = database_ms / 1000 - (before + after) / 2
            self._round_trip = round_trip

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.monotonic() + self._offset

    def now_ms(self) -> int:
        return int((time.monotonic() + self._offset) * 1000)

    def seconds_until(self, when: float) -> float:
        return max(when - self.time(), 0.0)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(seconds, 0.0))

    async def wait_async(self, event: threading.Event, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while not event.is_set():
            remaining = end - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(remaining, 1.0))
        return True

    def __repr__(self) -> str:
        state = f"rtt={self._round_trip:.4f}s" if self._round_trip is not None else "uncalibrated"
        return f"DatabaseClock(offset_from_host={self.time() - time.time():+.3f}s, {state})"
