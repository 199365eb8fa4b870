"""durable-workflows adapter: the public API of ``durable_core`` as API.md documents it.

Workflows and the queue are declared at import time (decorators register by name before
any engine exists), then one :class:`~durable_core.Engine` is launched on the database
the runner prepared. Defaults are kept everywhere, as for DBOS.
"""

from __future__ import annotations

import os
import time
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import Any

from benchmarks import probes
from benchmarks.systems.base import TOPIC, Handle, System
from durable_core import Engine, Queue, recv, step, workflow

bench_queue = Queue("bench")


@step
def noop(i: int) -> int:
    return i


@workflow
def steps(n: int) -> int:
    total = 0
    for i in range(n):
        total += noop(i)
    return total


@workflow
def three(x: int) -> int:
    return noop(noop(noop(x)))


@workflow
def receiver(key: int, hold: float) -> Any:
    probes.stamp(key, "parked")
    message = recv(topic=TOPIC, timeout=60)
    probes.stamp(key, "recv")
    time.sleep(hold)  # the caller is blocked in result() by now
    probes.stamp(key, "end")
    return message


@workflow
def queued(key: int) -> int:
    probes.stamp(key, "start")
    result = noop(key)
    probes.done(key)
    return result


@step
def gate() -> None:
    if os.environ.get("BENCH_BLOCK") == "1":  # the process that is about to be killed
        time.sleep(3600)


@workflow
def blocking(key: int) -> int:
    noop(key)
    gate()
    probes.done(key)
    return key


class DurableSystem(System):
    name = "durable"

    def __init__(self) -> None:
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("engine not launched")
        return self._engine

    def version(self) -> str:
        try:
            return dist_version("durable-workflows")
        except PackageNotFoundError:  # running from a checkout that was never installed
            return "checkout"

    def launch(self, database_url: str) -> None:
        self._engine = Engine(database_url=database_url, executor_id="bench")
        self._engine.launch()

    def shutdown(self) -> None:
        # Every workflow has finished when this is called; a short timeout keeps a slow
        # drain (e.g. an in-flight counter that never reaches zero) from costing 30 s per run.
        if self._engine is not None:
            self._engine.shutdown(timeout=5)

    def run_steps(self, n: int) -> int:
        return steps(n)

    def run_three(self, x: int) -> int:
        return three(x)

    def start_three(self, x: int) -> Handle:
        return self.engine.start_workflow(three, x)

    def start_receiver(self, key: int, hold: float) -> Handle:
        return self.engine.start_workflow(receiver, key, hold)

    def send(self, workflow_id: str, message: Any) -> None:
        self.engine.send(workflow_id, message, topic=TOPIC)

    def start_blocking(self, key: int) -> Handle:
        return self.engine.start_workflow(blocking, key)

    def enqueue(self, key: int) -> Handle:
        return bench_queue.enqueue(queued, key)


def make_system() -> System:
    return DurableSystem()
