"""A clock for tests: time stands still until it is advanced.

``TestClock`` implements ``durable_core.clock.Clock``. Every time the engine writes or compares
(sleep wake-ups, recv/get_event deadlines, ``delay=``, workflow timeouts, leases, cron ticks)
is this clock's time, and the waits that hold a workflow in place (``clock.wait``) end when the
clock passes them, not after real seconds. ``advance(seconds)`` moves time forward through
each due instant in order, letting the engine catch up at each one (``TestEngine`` registers
itself for that), so a test of seven days runs in milliseconds and always the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

#: How often a held wait re-checks its own event (cancellation) in real time.
_EVENT_POLL = 0.05


@dataclass(eq=False)
class _Waiter:
    deadline: float
    tick: threading.Event = field(default_factory=threading.Event)
    future: tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]] | None = None

    def release(self) -> None:
        self.tick.set()
        if self.future is not None:
            loop, future = self.future
            loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(True)


class TestClock:
    """Virtual time for an engine under test (``TestEngine(clock=...)``, ``Engine(clock=...)``).

    Parameters:
        start: where time starts: epoch seconds or an aware datetime (default: now).
    """

    __test__ = False

    def __init__(self, start: float | dt.datetime | None = None) -> None:
        if isinstance(start, dt.datetime):
            if start.tzinfo is None:
                raise ValueError("start must be an aware datetime (tzinfo=datetime.UTC)")
            start = start.timestamp()
        self._now = float(time.time() if start is None else start)
        self._lock = threading.RLock()
        self._waiters: list[_Waiter] = []
        self._drivers: set[int] = set()  # threads whose own waits move the clock
        # (next due time, catch up) pairs of what runs on this clock: see advance().
        self._participants: list[tuple[Callable[[], float | None], Callable[[], None]]] = []

    def __repr__(self) -> str:
        return f"TestClock({self.datetime.isoformat()})"

    # -- Clock --------------------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self._now * 1000)

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    def seconds_until(self, when: float) -> float:
        return max(when - self._now, 0.0)

    def calibrate(self, read_database_ms: Callable[[], int]) -> None:
        """Virtual time does not follow the database."""

    def wait(self, event: threading.Event, seconds: float) -> bool:
        if event.is_set():
            return True
        if threading.get_ident() in self._drivers:
            # Nothing else runs while this thread waits (it is the one that runs workflows):
            # its wait is the next thing to happen, so time moves to its end.
            self.advance_to(self._now + max(seconds, 0.0))
            return event.is_set()
        waiter = self._hold(seconds)
        try:
            while not event.is_set():
                if self._now >= waiter.deadline:
                    return False
                waiter.tick.wait(_EVENT_POLL)
            return True
        finally:
            self._drop(waiter)

    async def wait_async(self, event: threading.Event, seconds: float) -> bool:
        if event.is_set():
            return True
        loop = asyncio.get_running_loop()
        waiter = self._hold(seconds, loop.create_future(), loop)
        assert waiter.future is not None
        try:
            while not event.is_set():
                if self._now >= waiter.deadline:
                    return False
                try:
                    await asyncio.wait_for(asyncio.shield(waiter.future[1]), _EVENT_POLL)
                except TimeoutError:
                    pass
            return True
        finally:
            self._drop(waiter)

    def _hold(
        self,
        seconds: float,
        future: asyncio.Future[bool] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> _Waiter:
        with self._lock:
            waiter = _Waiter(self._now + max(seconds, 0.0))
            if future is not None and loop is not None:
                waiter.future = (loop, future)
            self._waiters.append(waiter)
            return waiter

    def _drop(self, waiter: _Waiter) -> None:
        with self._lock:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    # -- control --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def driven_by_this_thread(self) -> Iterator[None]:
        """While inside, a wait made in this thread advances the clock to the wait's end
        instead of blocking (for an engine that runs its workflows in the caller's thread)."""
        me = threading.get_ident()
        nested = me in self._drivers
        self._drivers.add(me)
        try:
            yield
        finally:
            if not nested:
                self._drivers.discard(me)

    def driving(self) -> bool:
        """Whether the current thread drives this clock (see ``driven_by_this_thread``)."""
        return threading.get_ident() in self._drivers

    @property
    def datetime(self) -> dt.datetime:
        """The current time as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self._now, dt.UTC)

    @property
    def waiting(self) -> int:
        """How many waits are held on this clock right now."""
        with self._lock:
            return len(self._waiters)

    def participate(
        self, next_due: Callable[[], float | None], catch_up: Callable[[], None]
    ) -> Callable[[], None]:
        """Register something that runs on this clock (an engine): ``next_due()`` tells when it
        next has something to do, ``catch_up()`` does what is due now. Returns an unregister
        function."""
        entry = (next_due, catch_up)
        with self._lock:
            self._participants.append(entry)

        def leave() -> None:
            with self._lock:
                if entry in self._participants:
                    self._participants.remove(entry)

        return leave

    def next_due(self) -> float | None:
        """The earliest future time at which something on this clock is due, if any."""
        with self._lock:
            participants = list(self._participants)
            times = [w.deadline for w in self._waiters]
        for next_due, _ in participants:
            when = next_due()
            if when is not None:
                times.append(when)
        future = [t for t in times if t > self._now]
        return min(future) if future else None

    def next_due_of_waits(self) -> float | None:
        """The earliest end of a wait held on this clock, if any."""
        with self._lock:
            return min((w.deadline for w in self._waiters), default=None)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, stopping at every due instant on the way so that
        what is due then (a timer, a delayed start, a cron tick) runs in order."""
        if seconds < 0:
            raise ValueError(f"time cannot go backwards (advance({seconds}))")
        self.advance_to(self._now + seconds)

    def advance_to(self, when: float | dt.datetime) -> None:
        """Move time forward to ``when`` (epoch seconds or an aware datetime)."""
        if isinstance(when, dt.datetime):
            when = when.timestamp()
        if when < self._now:
            raise ValueError("time cannot go backwards")
        while True:
            due = self.next_due()
            if due is None or due > when:
                break
            self._set(due)
        self._set(when)

    def _set(self, when: float) -> None:
        with self._lock:
            self._now = max(self._now, when)
            released = [w for w in self._waiters if w.deadline <= self._now]
            # Released waits stop counting as held at once, not when their thread gets to run.
            for waiter in released:
                self._waiters.remove(waiter)
            participants = list(self._participants)
        for waiter in released:
            waiter.release()
        for _, catch_up in participants:
            catch_up()
