"""The five workloads. Each takes a launched :class:`~benchmarks.systems.base.System` and
returns :class:`~benchmarks.stats.Metric` records; none knows which library it is driving.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from benchmarks import probes
from benchmarks.config import Sizes
from benchmarks.stats import Metric, latency_metrics, median
from benchmarks.systems.base import System

Workload = Callable[[System, Sizes], list[Metric]]

#: Generous bound for any single wait, so a hung system fails its row instead of the run.
WAIT_TIMEOUT = 120.0


def per_step_overhead(system: System, sizes: Sizes) -> list[Metric]:
    """One workflow of ``n`` sequential trivial steps, called directly; µs per step.

    Total wall time of the call divided by n (the workflow's own start/finish is amortised
    over n steps), median over ``step_repeats`` calls.
    """
    n = sizes.steps_per_workflow
    per_step: list[float] = []
    for _ in range(sizes.step_repeats):
        started = time.perf_counter()
        result = system.run_steps(n)
        elapsed = time.perf_counter() - started
        if result != n * (n - 1) // 2:
            raise AssertionError(f"steps({n}) returned {result!r}")
        per_step.append(elapsed / n)
    return [Metric("steps", f"per step ({n} steps)", median(per_step) * 1e6, "us", len(per_step))]


def sequential_latency(system: System, sizes: Sizes) -> list[Metric]:
    """Wall time of a direct call of the 3-step workflow, one after another."""
    samples: list[float] = []
    for i in range(sizes.latency_workflows):
        started = time.perf_counter()
        result = system.run_three(i)
        samples.append(time.perf_counter() - started)
        if result != i:
            raise AssertionError(f"three({i}) returned {result!r}")
    return latency_metrics("latency", "3-step wf", samples, "ms")


def throughput(system: System, sizes: Sizes) -> list[Metric]:
    """``start_workflow`` + ``result()`` of the 3-step workflow from several threads at once."""
    total, threads = sizes.throughput_workflows, sizes.throughput_threads
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def client(offset: int) -> None:
        barrier.wait()
        try:
            for x in range(offset, total, threads):
                if system.start_three(x).result() != x:
                    raise AssertionError(f"three({x}) returned a wrong result")
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    pool = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in pool:
        thread.join(WAIT_TIMEOUT * 5)
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    if any(thread.is_alive() for thread in pool):
        raise TimeoutError("throughput clients did not finish")
    return [Metric("throughput", f"{threads} threads, wf/s", total / elapsed, "/s", total)]


def messaging(system: System, sizes: Sizes) -> list[Metric]:
    """send→recv wake-up latency and workflow-end→``result()`` latency.

    Per iteration: start a receiver; wait until it is about to call recv() plus a grace
    period so it is parked, plus a random pause (so that a polling receiver, such as DBOS
    on SQLite, is sampled at every phase of its cycle instead of always the same one);
    stamp, send. The receiver stamps when recv() returns, sleeps a
    little (so the caller is already blocked in ``result()``), stamps its last statement and
    returns; the caller stamps when ``result()`` returns.
    """
    to_recv: list[float] = []
    to_result: list[float] = []
    rng = random.Random(7)
    probes.reset()
    for key in range(sizes.messaging_iterations):
        handle = system.start_receiver(key, sizes.finish_hold)
        probes.wait(key, "parked", WAIT_TIMEOUT)
        time.sleep(sizes.park_grace + rng.uniform(0.0, sizes.poll_phase_jitter))
        sent_at = time.perf_counter()
        system.send(handle.workflow_id, key)
        result = handle.result()
        returned_at = time.perf_counter()
        if result != key:
            raise AssertionError(f"receiver {key} got {result!r}")
        to_recv.append(probes.get(key, "recv") - sent_at)
        to_result.append(returned_at - probes.get(key, "end"))
    return [
        *latency_metrics("messaging", "send->recv", to_recv, "ms"),
        *latency_metrics("messaging", "end->result()", to_result, "ms"),
    ]


def queue(system: System, sizes: Sizes) -> list[Metric]:
    """Queue drain rate, then enqueue→start latency on an idle queue.

    Drain: enqueue ``queue_drain_workflows`` one-step workflows as fast as one thread can,
    time from the first enqueue until the last workflow's result is available. Workers may
    start while enqueueing continues; the enqueue rate alone is reported too.

    Latency: one workflow at a time: enqueue, wait until it has finished, pause a random
    moment (so a polling dequeuer is sampled at every phase of its cycle), repeat. The
    latency runs from the enqueue call to the workflow body's first statement.
    """
    n = sizes.queue_drain_workflows
    probes.reset(expect_done=n)
    handles = {}
    started = time.perf_counter()
    for key in range(n):
        handles[key] = system.enqueue(key)
    enqueued = time.perf_counter()
    last_key = probes.wait_all_done(WAIT_TIMEOUT * 5)
    handles[last_key].result()
    drained = time.perf_counter()
    if handles[n - 1].result() != n - 1:
        raise AssertionError("queued workflow returned a wrong result")
    metrics = [
        Metric("queue", f"drain {n} wf, wf/s", n / (drained - started), "/s", n),
        Metric("queue", "enqueue only, wf/s", n / (enqueued - started), "/s", n),
    ]

    rng = random.Random(42)
    probes.reset()
    latencies: list[float] = []
    for i in range(sizes.queue_latency_iterations):
        key = n + i
        time.sleep(rng.uniform(0.0, sizes.poll_phase_jitter))
        before = time.perf_counter()
        system.enqueue(key)
        latencies.append(probes.wait(key, "start", WAIT_TIMEOUT) - before)
        probes.wait(key, "done", WAIT_TIMEOUT)
    metrics += latency_metrics("queue", "enqueue->start", latencies, "ms")
    return metrics


def recovery(system_name: str, database_url: str, sizes: Sizes) -> list[Metric]:
    """Time to recover ``recovery_workflows`` pending workflows after a crash.

    A separate process (:mod:`benchmarks.crasher`) starts them, each blocked in its second
    step, and SIGKILLs itself. Then this process launches the system on the same database
    with the same executor identity: timed from the start of ``launch()`` until every
    recovered workflow has run to its end (replaying step 1, running the gate and finishing).
    """
    import os
    import subprocess
    import sys

    from benchmarks.systems import load

    n = sizes.recovery_workflows
    crashed = subprocess.run(
        [sys.executable, "-m", "benchmarks.crasher", "--system", system_name,
         "--database-url", database_url, "--count", str(n)],
        env={**os.environ, "BENCH_BLOCK": "1"},
        timeout=WAIT_TIMEOUT * 5,
        check=False,
    )  # fmt: skip
    if crashed.returncode != -9:
        raise AssertionError(f"the crasher exited with {crashed.returncode}, not SIGKILL")
    system = load(system_name)
    probes.reset(expect_done=n)
    started = time.perf_counter()
    system.launch(database_url)
    try:
        probes.wait_all_done(WAIT_TIMEOUT * 5)
        elapsed = time.perf_counter() - started
    finally:
        system.shutdown()
    return [
        Metric("recovery", f"recover {n} pending wf", elapsed * 1e3, "ms", n),
        Metric("recovery", "recovered, wf/s", n / elapsed, "/s", n),
    ]


WORKLOADS: dict[str, Workload] = {
    "steps": per_step_overhead,
    "latency": sequential_latency,
    "throughput": throughput,
    "messaging": messaging,
    "queue": queue,
}
