"""Knowing that the app is shutting down before the server waits for open responses.

uvicorn (like most ASGI servers) handles SIGTERM by refusing new connections and waiting for
open responses to finish, and runs the lifespan's shutdown only afterwards. An open SSE
stream would hold that wait for as long as its client listens (a browser's ``EventSource``
forever). So the lifespan chains a handler in front of the server's SIGTERM/SIGINT handler
that sets this signal first; streams end at once and the server's own handler runs as before.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Any

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ShutdownSignal:
    """Set once per lifespan: by a termination signal, or by the lifespan's exit."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._previous: dict[int, Any] = {}

    def start(self) -> None:
        """Arm for a new lifespan, on the running loop; chain the termination signals when
        called on the main thread (signal handlers can only be installed there)."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in _SIGNALS:
            previous = signal.getsignal(sig)
            if not callable(previous):  # SIG_DFL / SIG_IGN: nobody serves a graceful exit
                continue
            self._previous[sig] = previous
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.set_threadsafe()
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)

    def set_threadsafe(self) -> None:
        loop, event = self._loop, self._event
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    def stop(self) -> None:
        """At the lifespan's exit: end open streams and give the signals back."""
        if self._event is not None:
            self._event.set()
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, previous)
        self._previous.clear()

    def is_set(self) -> bool:
        return self._event is not None and self._event.is_set()

    async def wait(self) -> None:
        if self._event is None:  # no lifespan has started: nothing to wait for
            await asyncio.Event().wait()
        else:
            await self._event.wait()
