"""Time control: every wait of the engine follows the test clock, with no real-time waits."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from durable_core import Queue, recv, scheduled, sleep, sleep_async, step, workflow
from durable_core.errors import WorkflowCancelled
from durable_core.testing import TestClock, TestEngine

DAY = 86400.0
MONDAY_8AM = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)


@scheduled("0 9 * * *")
@workflow
def daily_digest(scheduled_at: dt.datetime, started_at: dt.datetime) -> dict:
    sleep(7 * DAY)
    approval = recv("approve", timeout=3 * DAY)
    return {"for": scheduled_at.date().isoformat(), "approval": approval}


@workflow
def slow(seconds: float) -> str:
    sleep(seconds)
    return "woke"


@workflow
async def slow_async(seconds: float) -> str:
    await sleep_async(seconds)
    return "woke"


ATTEMPTS: list[float] = []


@step(retries=3, retry_delay=3600, backoff=2, max_delay=DAY, jitter=0)  # exact delays
def flaky(clock_now: float) -> str:
    ATTEMPTS.append(clock_now)
    if len(ATTEMPTS) < 3:
        raise ConnectionError("down")
    return "up"


@workflow
def retrying() -> str:
    return flaky(0.0)


later = Queue("tk-later")


def clocked_engine(url, **options) -> TestEngine:
    return TestEngine(url, schema_prefix="testing_", clock=TestClock(MONDAY_8AM), **options)


@pytest.fixture
def clocked(test_engine_url):
    with clocked_engine(test_engine_url) as engine:
        yield engine


@pytest.fixture
def scheduling(test_engine_url):
    with clocked_engine(test_engine_url, schedules=[daily_digest]) as engine:
        yield engine


def test_seven_days_of_sleep_three_of_waiting_and_a_daily_schedule_take_no_real_time(
    scheduling,
):
    clocked = scheduling
    started = time.perf_counter()
    clocked.advance(3600)  # Monday 09:00: the first tick
    [first] = clocked.list_workflows(name=daily_digest.__durable_workflow__.name)
    assert first.workflow_id == "sched:" + first.name + ":2026-01-05T09:00:00Z"

    clocked.advance(7 * DAY)  # its week of sleep; a tick every day on the way
    digests = clocked.list_workflows(name=first.name, limit=None, newest_first=False)
    assert len(digests) == 8  # Monday 5th .. Monday 12th, 09:00
    assert all(w.status == "PENDING" for w in digests)  # the first now waits for approval

    clocked.advance(2 * DAY)  # two days into its three of waiting, the approval arrives
    clocked.send(first.workflow_id, "approved by Ada", topic="approve")
    clocked.run_until_idle(advance_time=False)
    assert clocked.retrieve_workflow(first.workflow_id).result(timeout=5) == {
        "for": "2026-01-05",
        "approval": "approved by Ada",
    }

    # Tuesday's digest slept until the 13th and waits for approval until the 16th, 09:00.
    clocked.advance(2 * DAY - 1)
    second = clocked.retrieve_workflow(digests[1].workflow_id)
    assert second.status().status == "PENDING"
    clocked.advance(1)
    assert second.status().result == {"for": "2026-01-06", "approval": None}
    assert clocked.clock.datetime == dt.datetime(2026, 1, 16, 9, 0, tzinfo=dt.UTC)
    assert len(clocked.list_workflows(name=first.name, limit=None)) == 12  # 5th .. 16th
    elapsed = time.perf_counter() - started
    print(f"eleven virtual days: {elapsed:.3f}s of wall time")
    # Measured alone: 0.02-0.05 s on SQLite, 0.19-0.29 s on PostgreSQL; 4.1 s in a CI run with
    # seven test processes on two cores. The bound only has to tell virtual time from real
    # time (eleven days), so it is loose enough for any load.
    assert elapsed < 60.0, f"eleven virtual days took {elapsed:.2f}s of wall time"


def test_run_until_idle_can_bound_how_far_it_skips(scheduling):
    scheduling.run_until_idle()  # nothing in flight: cron ticks alone do not move time
    assert scheduling.clock.datetime == MONDAY_8AM
    scheduling.advance(3600)
    scheduling.run_until_idle(within=2 * DAY)  # ticks keep starting week-long workflows
    assert scheduling.clock.datetime == MONDAY_8AM + dt.timedelta(days=2, hours=1)
    assert len(scheduling.list_workflows(name=daily_digest.__durable_workflow__.name)) == 3


def test_nothing_moves_until_the_clock_does(clocked):
    handle = clocked.start_workflow(slow, 60)
    clocked.run_until_idle(advance_time=False)
    assert handle.status().status == "PENDING"
    clocked.advance(59.9)
    assert handle.status().status == "PENDING"
    clocked.advance(0.1)
    assert handle.status().result == "woke"


def test_result_skips_time_while_the_caller_waits(clocked):
    started = time.perf_counter()
    assert clocked.start_workflow(slow, 30 * DAY).result(timeout=5) == "woke"
    assert slow(DAY) == "woke"  # a direct call waits in place, on the clock
    assert clocked.start_workflow(slow_async, 3 * DAY).result(timeout=5) == "woke"
    assert clocked.clock.datetime >= MONDAY_8AM + dt.timedelta(days=34)
    # Virtual days against real ones: the bound only has to tell the two apart.
    assert time.perf_counter() - started < 60.0


def test_auto_advance_can_be_turned_off(test_engine_url):
    with TestEngine(test_engine_url, schema_prefix="testing_", auto_advance=False) as engine:
        handle = engine.start_workflow(slow, 10)
        with pytest.raises(TimeoutError):
            handle.result(timeout=0.3)
        engine.advance(10)
        assert handle.result(timeout=5) == "woke"


def test_delay_holds_enqueued_work_until_its_time(clocked):
    handle = later.enqueue(slow, 0, delay=2 * 3600)
    clocked.run_until_idle(advance_time=False)
    assert handle.status().status == "ENQUEUED"
    clocked.advance(2 * 3600 - 1)
    assert handle.status().status == "ENQUEUED"
    clocked.advance(1)
    assert handle.status().result == "woke"


def test_workflow_timeout_follows_the_clock(clocked):
    handle = clocked.start_workflow(slow, DAY, timeout=3600)
    clocked.advance(3599)
    assert handle.status().status == "PENDING"
    clocked.advance(2)
    with pytest.raises(WorkflowCancelled, match="timed out"):
        handle.result(timeout=5)


def test_step_retry_delays_follow_the_clock(clocked):
    ATTEMPTS.clear()
    started = time.perf_counter()
    handle = clocked.start_workflow(retrying)
    clocked.run_until_idle()  # two retries: one hour, then two
    assert handle.result(timeout=5) == "up"
    assert clocked.clock.datetime == MONDAY_8AM + dt.timedelta(hours=3)
    # Three virtual hours (2.36 s of wall time in a CI simulation on a slow 2-core machine,
    # where the bound was 2 s); the bound only has to tell them from three real ones.
    assert time.perf_counter() - started < 60.0


def test_a_dead_executors_work_is_adopted_when_its_lease_expires(database_url):
    clock = TestClock(MONDAY_8AM)
    common = {"fresh_schema": False, "clock": clock, "lease_seconds": 30}
    dying = TestEngine(database_url, **common).launch()
    crash = dying.crash_before("flaky")
    handle = dying.start_workflow(retrying)
    crash.wait()
    survivor = TestEngine(database_url, **common).launch()
    dying.shutdown()  # the process is gone; its PENDING workflow is left behind
    try:
        ATTEMPTS.clear()
        survivor.advance(29)
        left = survivor.retrieve_workflow(handle.workflow_id)
        assert left.status().executor_id == dying.executor_id
        survivor.advance(2)  # past the lease: the survivor adopts it
        survivor.run_until_idle()
        status = survivor.retrieve_workflow(handle.workflow_id).status()
        assert status.executor_id == survivor.executor_id and status.result == "up"
    finally:
        survivor.shutdown()


def test_time_cannot_go_backwards():
    clock = TestClock(MONDAY_8AM)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="aware"):
        TestClock(dt.datetime(2026, 1, 1))
