"""Entry point of a worker process: ``python -m tests.crash.run_worker URL EXECUTOR_ID …``.

It launches an Engine (which recovers this executor's PENDING workflows), optionally starts
one workflow, writes a ready file, and then serves until it is killed.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time

from durable_core import Engine
from tests.crash import workers


def hold_checkpoint(engine: Engine, step_name: str, log: str) -> None:
    """Stop this process between a step's end and its checkpoint (after a @transaction
    committed), so the test can kill it exactly there."""
    original = engine.store.record_step

    def record_step(workflow_id, run_token, step_id, name, *args, **kwargs):
        if name == step_name:
            workers.append(log, f"committed {workflow_id}")
            workers.wait_to_be_killed()
        return original(workflow_id, run_token, step_id, name, *args, **kwargs)

    engine.store.record_step = record_step  # type: ignore[method-assign]


def shift_wall_clock(seconds: float) -> None:
    """Make this process's wall clock (``time.time``) run ``seconds`` off the host's, as on a
    machine whose clock is wrong. Real time stays readable via ``workers.real_time()``."""
    real_time, real_time_ns = time.time, time.time_ns
    time.time = lambda: real_time() + seconds
    time.time_ns = lambda: real_time_ns() + int(seconds * 1e9)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("executor_id")
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--heartbeat", type=float, default=10.0)
    parser.add_argument("--queues", default=None, help="comma-separated; default all")
    parser.add_argument("--start", default=None, help="a workflow function in workers")
    parser.add_argument("--workflow-id", default=None)
    parser.add_argument("--args", default="[]", help="JSON list of arguments")
    parser.add_argument("--hold-checkpoint", default=None, help="step name")
    parser.add_argument("--log", default=None)
    parser.add_argument("--ready", default=None, help="file written once launched")
    parser.add_argument("--clock-skew", type=float, default=0.0, help="seconds off real time")
    parser.add_argument("--scheduler", action="store_true", help="fire the stored schedules")
    opts = parser.parse_args()
    if opts.clock_skew:
        shift_wall_clock(opts.clock_skew)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")

    engine = Engine(
        opts.database_url,
        executor_id=opts.executor_id,
        application_version="test",
        queues=None if opts.queues is None else [q for q in opts.queues.split(",") if q],
        lease_seconds=opts.lease,
        heartbeat_seconds=opts.heartbeat,
        run_scheduler=opts.scheduler,
    )
    engine.launch()
    if opts.hold_checkpoint:
        hold_checkpoint(engine, opts.hold_checkpoint, opts.log)
    if opts.start:
        fn = getattr(workers, opts.start)
        engine.start_workflow(fn, *json.loads(opts.args), workflow_id=opts.workflow_id)
    if opts.ready:
        workers.append(opts.ready, "ready")
    threading.Event().wait()


if __name__ == "__main__":
    main()
