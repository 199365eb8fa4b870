"""One adapter per system under test; workloads only ever talk to :class:`base.System`.

Adapters are imported lazily by name (:func:`load`) so that a worker subprocess imports
exactly one library: DBOS keeps process-global state and must never share a process with
our engine, and a missing library should fail only its own measurements.
"""

from __future__ import annotations

import importlib

from benchmarks.systems.base import System

_MODULES = {"durable": "benchmarks.systems.durable", "dbos": "benchmarks.systems.dbos_system"}


def load(name: str) -> System:
    """Import the adapter module for ``name`` and return a fresh, not yet launched adapter."""
    try:
        module_name = _MODULES[name]
    except KeyError:
        raise ValueError(f"unknown system {name!r}; expected one of {sorted(_MODULES)}") from None
    module = importlib.import_module(module_name)
    return module.make_system()


__all__ = ["System", "load"]
