"""A process that launches an Engine and then lets the interpreter exit, for the bounded-exit
tests: ``python -m tests.lifecycle.run_exit URL MODE DIR``.

Modes: ``idle`` finishes a workflow, then waits for ``DIR/go`` and returns from main without
calling shutdown(); ``running`` also holds a step open until ``DIR/release``; ``past-timeout``
calls ``shutdown(timeout=0.5)`` while a 3-second step runs, then returns.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid

from durable_core import Engine, step, workflow


def wait_file(path: str) -> None:
    while not os.path.exists(path):
        time.sleep(0.02)  # the test creates the file


@step
def held(folder: str) -> str:
    open(os.path.join(folder, "step-started"), "w").close()
    wait_file(os.path.join(folder, "release"))
    return "released"


@step
def slow(folder: str) -> str:
    open(os.path.join(folder, "step-started"), "w").close()
    time.sleep(3)  # outlives the shutdown timeout
    return "slow"


@step
def after(x: str) -> str:
    return x + "!"


@workflow
def holding(folder: str) -> str:
    return after(held(folder))


@workflow
def outliving(folder: str) -> str:
    return after(slow(folder))


@workflow
def quick() -> str:
    return "done"


def main() -> None:
    url, mode, folder = sys.argv[1:4]
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    engine = Engine(
        url,
        executor_id=f"exit-{uuid.uuid4().hex[:6]}",
        lease_seconds=3,
        heartbeat_seconds=1,
        run_scheduler=False,
    )
    engine.launch()
    assert engine.start_workflow(quick).result(timeout=30) == "done"
    if mode == "running":
        engine.start_workflow(holding, folder)
        wait_file(os.path.join(folder, "step-started"))
    if mode == "past-timeout":
        engine.start_workflow(outliving, folder)
        wait_file(os.path.join(folder, "step-started"))
        engine.shutdown(timeout=0.5)
    open(os.path.join(folder, "ready"), "w").close()
    if mode != "past-timeout":
        wait_file(os.path.join(folder, "go"))


if __name__ == "__main__":
    main()
