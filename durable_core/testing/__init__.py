"""The test toolkit: a test engine, crash injection, step stubs, enqueue assertions and
history replay. Also a pytest plugin (fixtures ``durable_engine``; see ``plugin``).

    from durable_core.testing import TestEngine

    with TestEngine() as engine:              # SQLite in a temporary directory
        engine.crash_before("charge")
        handle = engine.start_workflow(checkout, "o-1")
        engine.recover()                      # as a restarted worker would
        assert handle.result(timeout=10) == ...
"""

from ..history import export_history, load_history
from .clock import TestClock
from .engine import Message, TestEngine, fresh_database, test_engine
from .faults import Crash, SimulatedCrash, Stub
from .replay import ReplayResult, replay

__all__ = [
    "TestEngine",
    "TestClock",
    "test_engine",
    "fresh_database",
    "SimulatedCrash",
    "Crash",
    "Stub",
    "Message",
    "replay",
    "ReplayResult",
    "export_history",
    "load_history",
]
