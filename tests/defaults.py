"""The default engine for one block of a test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from durable_core import runtime


@contextlib.contextmanager
def as_default(engine: Any) -> Iterator[None]:
    """Make ``engine`` the default engine (what ``Queue.enqueue`` and the module-level calls
    act on) for the block, then put back whatever was the default: a test run earlier in the
    same process (a Django one, an xdist neighbour's module) may have left its engine set."""
    previous = runtime._default_engine
    runtime.set_default_engine(engine)
    try:
        yield
    finally:
        runtime.set_default_engine(previous)
