"""DBOS Transact adapter (``dbos`` 3.4.0), configured as its documentation shows.

DBOS defaults are kept (queue polling every 1 s, SQLite notifications polled every 1 s,
its own SQLite pragmas) because those are what a user gets; ``BENCH_DBOS_POLL`` (seconds)
lowers both polling intervals for a tuned comparison. DBOS is a process-wide singleton:
that is why every measurement runs in its own subprocess and :meth:`shutdown` calls
``DBOS.destroy``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from importlib.metadata import version as dist_version
from typing import Any

from dbos import DBOS

from benchmarks import probes
from benchmarks.systems.base import TOPIC, Handle, System

QUEUE_NAME = "bench"


@DBOS.step()
def noop(i: int) -> int:
    return i


@DBOS.workflow()
def steps(n: int) -> int:
    total = 0
    for i in range(n):
        total += noop(i)
    return total


@DBOS.workflow()
def three(x: int) -> int:
    return noop(noop(noop(x)))


@DBOS.workflow()
def receiver(key: int, hold: float) -> Any:
    probes.stamp(key, "parked")
    message = DBOS.recv(TOPIC, timeout_seconds=60)
    probes.stamp(key, "recv")
    time.sleep(hold)  # the caller is blocked in result() by now
    probes.stamp(key, "end")
    return message


@DBOS.workflow()
def queued(key: int) -> int:
    probes.stamp(key, "start")
    result = noop(key)
    probes.done(key)
    return result


@dataclass(slots=True)
class _DbosHandle:
    inner: Any

    @property
    def workflow_id(self) -> str:
        return self.inner.get_workflow_id()

    def result(self) -> Any:
        return self.inner.get_result()


@DBOS.step()
def gate() -> None:
    if os.environ.get("BENCH_BLOCK") == "1":  # the process that is about to be killed
        time.sleep(3600)


@DBOS.workflow()
def blocking(key: int) -> int:
    noop(key)
    gate()
    probes.done(key)
    return key


class DbosSystem(System):
    name = "dbos"

    def __init__(self) -> None:
        self._queue: Any = None
        poll = os.environ.get("BENCH_DBOS_POLL")
        self._poll = float(poll) if poll else None

    def version(self) -> str:
        return dist_version("dbos")

    def launch(self, database_url: str) -> None:
        config: dict[str, Any] = {
            "name": "bench",
            "system_database_url": database_url,
            "log_level": "WARNING",
        }
        if self._poll is not None:
            config["notification_listener_polling_interval_sec"] = self._poll
        DBOS(config=config)  # type: ignore[arg-type]
        DBOS.launch()
        queue_options: dict[str, Any] = {}
        if self._poll is not None:
            queue_options["polling_interval_sec"] = self._poll
        self._queue = DBOS.register_queue(QUEUE_NAME, **queue_options)

    def shutdown(self) -> None:
        DBOS.destroy(destroy_registry=False)

    def run_steps(self, n: int) -> int:
        return steps(n)

    def run_three(self, x: int) -> int:
        return three(x)

    def start_three(self, x: int) -> Handle:
        return _DbosHandle(DBOS.start_workflow(three, x))

    def start_receiver(self, key: int, hold: float) -> Handle:
        return _DbosHandle(DBOS.start_workflow(receiver, key, hold))

    def send(self, workflow_id: str, message: Any) -> None:
        DBOS.send(workflow_id, message, TOPIC)

    def start_blocking(self, key: int) -> Handle:
        return _DbosHandle(DBOS.start_workflow(blocking, key))

    def enqueue(self, key: int) -> Handle:
        return _DbosHandle(self._queue.enqueue(queued, key))


def make_system() -> System:
    return DbosSystem()
