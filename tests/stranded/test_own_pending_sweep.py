"""This executor's sweep: a PENDING workflow owned here that no execution holds (what a lost
claim reply or a failure in the engine's own bookkeeping leaves) runs again on a live worker."""

from __future__ import annotations

import time
import uuid

from durable_core import Engine, sleep, step, workflow
from durable_core.serialization import encode_arguments
from durable_core.store import WorkflowRow


@step
def triple(x: int) -> int:
    return 3 * x


@workflow
def triples(x: int) -> int:
    return triple(x)


RUNS: list[str] = []


@step
def slow_step(label: str) -> str:
    RUNS.append(label)
    time.sleep(2.0)  # the step's own work: four sweeps pass while it runs
    return label


@workflow
def slow_then_parked(label: str) -> str:
    slow_step(label)
    sleep(2.0)  # parked off-thread: held, not stranded
    return label


def test_sweep_runs_own_unheld_pending_workflows(database_url):
    engine = Engine(
        database_url,
        executor_id=f"sweep-{uuid.uuid4().hex[:8]}",
        run_scheduler=False,
        heartbeat_seconds=0.5,
        suspend_threshold=0.2,
        lease_seconds=60,  # no adoption involved: this executor is alive
    ).launch()
    try:
        defn = triples.__durable_workflow__
        t = engine.clock.now_ms()
        workflow_id = f"stranded-{uuid.uuid4().hex[:8]}"
        # What a claim whose reply was lost leaves: PENDING here, under a run token that no
        # execution in this process holds.
        engine.store.insert_workflow(
            WorkflowRow(
                workflow_id=workflow_id,
                name=defn.name,
                status="PENDING",
                inputs=encode_arguments(engine.serializer, defn.name, (5,), {}),
                executor_id=engine.executor_id,
                run_token="lost-claim:" + workflow_id,
                application_version=engine.application_version,
                max_recovery_attempts=defn.max_recovery_attempts,
                created_at=t,
                updated_at=t,
                started_at=t,
            )
        )
        started = time.monotonic()
        assert engine.retrieve_workflow(workflow_id).result(timeout=15) == 15
        assert time.monotonic() - started < 10
        assert engine.retrieve_workflow(workflow_id).status().recovery_attempts == 1
        # Workflows that are running or parked here are never taken: one execution each.
        label = uuid.uuid4().hex
        busy = engine.start_workflow(slow_then_parked, label)
        assert busy.result(timeout=20) == label
        assert RUNS.count(label) == 1
        assert busy.status().recovery_attempts == 0
    finally:
        engine.shutdown(timeout=5)
