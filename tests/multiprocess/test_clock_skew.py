"""Host clock skew changes nothing (issue 10, "Time: one clock for the whole fleet").

Each worker is a real process whose wall clock (``time.time``) is shifted by ``--clock-skew``
seconds, as on a host whose clock is wrong. Leases, deadlines, rate windows and delays are
compared on the database's clock, so a worker 60 s behind is not presumed dead, a worker 60 s
ahead does not cancel another's ``timeout=`` workflow, and rate limits and delays hold. The
test reads real time from ``workers.real_time()`` (CLOCK_REALTIME, which the shift does not
move) to judge when things really happened.
"""

from __future__ import annotations

import pytest

from durable_core.errors import WorkflowCancelled
from tests.crash.harness import max_in_window, wait_for
from tests.crash.workers import (
    read_lines,
    real_time,
    skew_item,
    skew_queue,
    skew_rate_queue,
    sleeper,
)

pytestmark = [pytest.mark.crash, pytest.mark.timeout(180)]

LEASE = 3
SKEW = 60.0
NAME = skew_item.__durable_workflow__.name
SLEEPER = sleeper.__durable_workflow__.name


def worker(fleet, executor_id: str, skew: float, queues: str):
    return fleet.spawn(
        executor_id,
        "--lease",
        str(LEASE),
        "--heartbeat",
        "1",
        "--clock-skew",
        str(skew),
        "--queues",
        queues,
    )


def launch(*workers) -> None:
    for w in workers:
        w.wait_ready()


def events(log: str, kind: str) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for line in read_lines(log):
        what, tag, when = line.split()
        if what == kind:
            found.setdefault(tag, []).append(float(when))
    return found


@pytest.mark.parametrize("behind", [-SKEW, SKEW], ids=["runner-behind", "runner-ahead"])
def test_a_skewed_live_worker_is_not_adopted(fleet, client, tmp_path, behind):
    """The runner's clock is 60 s off; the other worker's clock is 60 s off the other way.
    Its steps last three leases: none may be adopted and run a second time."""
    log = str(tmp_path / "effects.log")
    runner = worker(fleet, "runner", behind, skew_queue.name)
    judge = worker(fleet, "judge", -behind, "")  # serves no queue: it can only adopt
    launch(runner, judge)
    c = client()
    handles = [
        c.enqueue(skew_queue.name, NAME, log, f"t{i}", 3 * LEASE, workflow_id=f"skew-{i}")
        for i in range(5)
    ]
    for h in handles:
        assert h.result(timeout=90) == h.workflow_id.replace("skew-", "t")
    starts = events(log, "start")
    assert {tag: len(times) for tag, times in starts.items()} == {f"t{i}": 1 for i in range(5)}
    for h in handles:
        status = h.status()
        assert status.executor_id == "runner" and status.recovery_attempts == 0


def test_a_skewed_dead_worker_is_adopted_within_the_lease(fleet, client, tmp_path):
    """The converse: a worker 60 s ahead dies; one 60 s behind adopts its work once the
    lease (not the lease plus two minutes of skew) has passed."""
    log = str(tmp_path / "effects.log")
    victim = worker(fleet, "victim", SKEW, skew_queue.name)
    launch(victim)
    c = client()
    handle = c.enqueue(skew_queue.name, NAME, log, "t", 1.0, workflow_id="skew-dead")
    wait_for(lambda: events(log, "start"), 30, "the step to start")
    killed_at = victim.kill()
    heir = worker(fleet, "heir", -SKEW, "")
    launch(heir)
    assert handle.result(timeout=60) == "t"
    adopted_after = events(log, "start")["t"][1] - killed_at
    assert len(events(log, "start")["t"]) == 2  # explained by the kill
    assert adopted_after <= LEASE + 15, adopted_after
    assert handle.status().executor_id == "heir"


def test_a_worker_ahead_does_not_cancel_another_workers_timeout(fleet, client, tmp_path):
    """A worker 60 s behind runs a ``timeout=20`` workflow; a worker 60 s ahead expires
    deadlines. The workflow finishes; a genuinely short timeout still cancels on time."""
    log = str(tmp_path / "effects.log")
    runner = worker(fleet, "runner", -SKEW, skew_queue.name)
    expirer = worker(fleet, "expirer", SKEW, "")
    launch(runner, expirer)
    c = client()
    ok = c.enqueue(skew_queue.name, NAME, log, "ok", 4.0, workflow_id="skew-ok", timeout=20)
    short = c.enqueue(
        skew_queue.name, NAME, log, "short", 60.0, workflow_id="skew-short", timeout=3
    )
    assert ok.result(timeout=60) == "ok"
    wait_for(lambda: events(log, "start").get("short"), 30, "the short workflow to start")
    with pytest.raises(WorkflowCancelled):
        short.result(timeout=60)
    started = events(log, "start")["short"][0]
    lifetime = real_time() - started
    assert lifetime >= 3 - 0.5, lifetime  # not cancelled before its timeout
    assert lifetime <= 3 + 15, lifetime


def test_rate_limit_holds_across_skewed_workers(fleet, client, tmp_path):
    """Queue ``clock_skew_rate`` admits 5 starts per 5 s. A worker 60 s behind takes the
    first 5; a worker 60 s ahead joins and must wait for the window like the first."""
    log = str(tmp_path / "effects.log")
    first = worker(fleet, "first", -SKEW, skew_rate_queue.name)
    launch(first)
    c = client()
    handles = [
        c.enqueue(skew_rate_queue.name, NAME, log, f"r{i}", 0.0, workflow_id=f"rate-{i}")
        for i in range(10)
    ]
    wait_for(lambda: len(events(log, "start")) >= 5, 30, "the first window's starts")
    second = worker(fleet, "second", SKEW, skew_rate_queue.name)
    launch(second)
    for h in handles:
        h.result(timeout=90)
    starts = [t for times in events(log, "start").values() for t in times]
    assert len(starts) == 10
    # A generous margin for scheduling: the claims of two windows are >= 5 s apart.
    assert max_in_window(starts, 4.0) <= 5, sorted(round(t - min(starts), 2) for t in starts)


def test_delay_holds_on_a_worker_ahead(fleet, client, tmp_path):
    """``delay=4`` enqueued by this (unskewed) process: a worker 60 s ahead must not start it
    early, and one 60 s behind must not start it late."""
    log = str(tmp_path / "effects.log")
    ahead = worker(fleet, "ahead", SKEW, skew_queue.name)
    launch(ahead)
    c = client()
    enqueued_at = real_time()
    h = c.enqueue(skew_queue.name, NAME, log, "d", 0.0, workflow_id="skew-delay", delay=4)
    assert h.result(timeout=60) == "d"
    waited = events(log, "start")["d"][0] - enqueued_at
    assert 4 - 0.5 <= waited <= 4 + 15, waited


def test_durable_sleep_is_not_shortened_by_skew(fleet, client, tmp_path):
    """A workflow sleeping on a worker 60 s behind is adopted, after that worker is killed,
    by a worker 60 s ahead: it wakes at the recorded time, not at once."""
    log = str(tmp_path / "sleep.log")
    victim = worker(fleet, "sleepy", -SKEW, skew_queue.name)
    launch(victim)
    c = client()
    h = c.enqueue(skew_queue.name, SLEEPER, log, 12.0, workflow_id="skew-sleep")
    wait_for(lambda: read_lines(log), 30, "the workflow to start sleeping")
    asleep_at = real_time()
    victim.kill()
    heir = worker(fleet, "heir", SKEW, "")
    launch(heir)
    h.result(timeout=60)
    slept = real_time() - asleep_at
    assert slept >= 12 - 1, slept
    assert h.status().executor_id == "heir"
