"""Workload sizes, database locations and names shared by the runner and the workers.

Kept in one place so that the parent (which prepares databases and prints the table) and
the per-measurement subprocesses agree on names without passing much on the command line.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

#: Server that both systems and the floor use; trust auth, so no password in the URL.
PG_SERVER_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")

#: One database per system so neither sees the other's tables or NOTIFY traffic.
PG_DATABASES = {"durable": "bench_durable", "dbos": "bench_dbos", "floor": "bench_floor"}

BACKENDS = ("postgres", "sqlite")
SYSTEMS = ("durable", "dbos")
WORKLOADS = ("steps", "latency", "throughput", "messaging", "queue", "recovery")


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each workload does. ``FULL`` is what the README's numbers use."""

    steps_per_workflow: int = 1000
    step_repeats: int = 5
    latency_workflows: int = 500
    throughput_workflows: int = 2000
    throughput_threads: int = 8
    messaging_iterations: int = 200
    queue_drain_workflows: int = 5000
    queue_latency_iterations: int = 50
    floor_inserts: int = 1000
    recovery_workflows: int = 1000
    #: Seconds to wait after a receiver says it is about to call recv(), so that the
    #: message finds it already parked (we measure the wake-up path, not a lucky read).
    park_grace: float = 0.05
    #: Seconds the receiver holds before its last statement, so that the caller is surely
    #: already blocked in handle.result() when the workflow finishes.
    finish_hold: float = 0.02
    #: Upper bound of a random pause before each send and each enqueue-latency probe. A
    #: polling waiter (DBOS's queues; its recv on SQLite), probed in a tight loop, would be
    #: hit at the same phase of its 1 s cycle every time and give a biased median.
    poll_phase_jitter: float = 1.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


FULL = Sizes()
QUICK = Sizes(
    steps_per_workflow=100,
    step_repeats=2,
    latency_workflows=50,
    throughput_workflows=200,
    messaging_iterations=20,
    queue_drain_workflows=300,
    queue_latency_iterations=5,
    floor_inserts=200,
    recovery_workflows=100,
    poll_phase_jitter=0.3,
)


def sizes_for(quick: bool) -> Sizes:
    return QUICK if quick else FULL


def pg_url(database: str) -> str:
    return f"{PG_SERVER_URL.rstrip('/')}/{database}"


def sqlite_url(path: str) -> str:
    """SQLAlchemy-style URL for an absolute path (both systems accept this form)."""
    return f"sqlite:///{os.path.abspath(path)}"
