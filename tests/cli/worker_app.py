"""The app a real ``durable worker`` subprocess imports (as ``worker_app``, from this folder)."""

from __future__ import annotations

import time

from durable_core import Queue, set_event, step, workflow

jobs = Queue("cli_jobs")
other = Queue("cli_other")


@step
def double(x: int) -> int:
    return x * 2


@step
def slow(seconds: float) -> str:
    time.sleep(seconds)  # the workload itself: a step still running when SIGTERM arrives
    return "slept"


@workflow
def quick(x: int) -> int:
    return double(x)


@workflow
def long_running(seconds: float) -> str:
    set_event("started", True)
    return slow(seconds)
