"""The interface that every system adapter implements.

Each method maps to one user-level operation of the library, done the way its docs say a
user would do it. Workflow bodies live in the adapter modules (each library has its own
decorators) but do the same work and call the same :mod:`benchmarks.probes`:

* ``steps(n)``: n sequential calls of a trivial step ``lambda i: i``;
* ``three(x)``: three sequential trivial steps;
* ``receiver(key)``: stamp ``parked``, ``recv(TOPIC)``, stamp ``recv``, sleep ``hold`` seconds, stamp
  ``end`` (its last statement) and return the message;
* ``queued(key)``: stamp ``start``, one trivial step, count itself done.
* ``blocking(key)``: one trivial step, then a ``gate`` step that blocks for an hour when
  ``BENCH_BLOCK=1`` (the process that is about to crash) and returns at once otherwise (the
  process that recovers it), then count itself done.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol

#: recv/send topic used by the messaging workload.
TOPIC = "bench"


class Handle(Protocol):
    """The minimum both libraries' workflow handles offer, under one spelling."""

    @property
    def workflow_id(self) -> str: ...

    def result(self) -> Any: ...


class System(ABC):
    """A launched library instance on one system database."""

    #: Short name used in the results table and JSON ("durable", "dbos").
    name: str

    @abstractmethod
    def launch(self, database_url: str) -> None:
        """Create/migrate the schema and start background workers (queues, listeners)."""

    @abstractmethod
    def shutdown(self) -> None:
        """Stop background work and release connections."""

    @abstractmethod
    def version(self) -> str:
        """Library version, recorded next to its numbers."""

    @abstractmethod
    def run_steps(self, n: int) -> int:
        """Call the ``steps`` workflow directly (in the caller's thread) and return its result."""

    @abstractmethod
    def run_three(self, x: int) -> int:
        """Call the ``three`` workflow directly and return its result."""

    @abstractmethod
    def start_three(self, x: int) -> Handle:
        """Start the ``three`` workflow in the background; return its handle."""

    @abstractmethod
    def start_receiver(self, key: int, hold: float) -> Handle:
        """Start the ``receiver`` workflow in the background; return its handle."""

    @abstractmethod
    def send(self, workflow_id: str, message: Any) -> None:
        """Send ``message`` on :data:`TOPIC` from outside any workflow."""

    @abstractmethod
    def enqueue(self, key: int) -> Handle:
        """Enqueue the ``queued`` workflow on the benchmark queue; return its handle."""

    @abstractmethod
    def start_blocking(self, key: int) -> Handle:
        """Start the ``blocking`` workflow in the background; return its handle."""

    def warm_up(self) -> None:
        """Open pooled connections and fill caches so the first sample is not an outlier."""
        for i in range(5):
            self.run_three(i)
        self.start_three(0).result()
