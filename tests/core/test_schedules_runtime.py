"""Schedules as data (issue 14): created, listed, paused, resumed, edited, triggered,
backfilled and deleted at run time; time zones with DST; catch-up and overlap policies;
exactly one run per tick across engines. Each test runs under a TestClock on both backends
(virtual time: a day of ticks in milliseconds), except the multi-process test at the end."""

from __future__ import annotations

import asyncio
import datetime as dt
import zoneinfo

import pytest

from durable_core import Client, recv, scheduled, workflow
from durable_core.errors import ConfigurationError, ScheduleConflict, ScheduleNotFound
from durable_core.schedules import MAX_BACKFILL
from durable_core.testing import TestClock, TestEngine

UTC = dt.UTC
HOUR = 3600.0
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


@workflow(name="sched_rt.report")
def report(scheduled_at: dt.datetime, started_at: dt.datetime, *args, **kwargs) -> dict:
    return {"at": scheduled_at.isoformat(), "args": list(args), "kwargs": kwargs}


@workflow(name="sched_rt.waits")
def waits(scheduled_at: dt.datetime, started_at: dt.datetime) -> str:
    recv("done", timeout=30 * 86400)
    return scheduled_at.isoformat()


@scheduled("0 * * * *")
@workflow(name="sched_rt.hourly_code")
def hourly_code(scheduled_at: dt.datetime, started_at: dt.datetime) -> str:
    return scheduled_at.isoformat()


REPORT = "sched_rt.report"


def at(*fields: int) -> dt.datetime:
    return dt.datetime(*fields, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
def clock() -> TestClock:
    return TestClock(at(2026, 1, 5, 7, 30))


def engine_on(database_url: str, clock: TestClock, **options) -> TestEngine:
    """A TestEngine on the test's database (kept across engines: a restart is a new one)."""
    return TestEngine(database_url, fresh_schema=False, clock=clock, **options)


@pytest.fixture
def tengine(database_url, clock):
    with engine_on(database_url, clock) as engine:
        yield engine


def runs(engine, schedule_id: str) -> list:
    rows = engine.list_workflows(limit=None, newest_first=False)
    return [w for w in rows if w.workflow_id.startswith(f"sched:{schedule_id}:")]


def ticks_of(engine, schedule_id: str) -> list[str]:
    return [w.workflow_id.removeprefix(f"sched:{schedule_id}:") for w in runs(engine, schedule_id)]


# -- create, list, fire ---------------------------------------------------------------------------


def test_a_created_schedule_fires_once_per_tick_in_its_time_zone(tengine):
    created = tengine.create_schedule(
        "paris-9am", report, "0 9 * * *", timezone="Europe/Paris", args=[1], kwargs={"k": "v"}
    )
    assert created.source == "api" and not created.code_defined
    assert created.next_tick == at(2026, 1, 5, 8, 0)  # 09:00 in Paris (UTC+1 in January)
    assert created.catchup == "latest" and created.overlap == "skip"

    tengine.advance(HOUR)  # 08:30 UTC: the tick at 08:00 has fired
    [run] = runs(tengine, "paris-9am")
    assert run.workflow_id == "sched:paris-9am:2026-01-05T08:00:00Z"
    assert tengine.retrieve_workflow(run.workflow_id).result(timeout=10) == {
        "at": "2026-01-05T08:00:00+00:00",
        "args": [1],
        "kwargs": {"k": "v"},
    }
    tengine.advance(2 * 86400)
    assert ticks_of(tengine, "paris-9am") == [
        "2026-01-05T08:00:00Z",
        "2026-01-06T08:00:00Z",
        "2026-01-07T08:00:00Z",
    ]
    [listed] = tengine.list_schedules()
    assert listed.schedule_id == "paris-9am"
    assert listed.last_tick == at(2026, 1, 7, 8, 0)
    assert listed.last_workflow_id == "sched:paris-9am:2026-01-07T08:00:00Z"
    assert listed.next_tick == at(2026, 1, 8, 8, 0)
    assert tengine.get_schedule("paris-9am") == listed


def test_two_engines_on_one_database_fire_each_tick_once(database_url, clock):
    with engine_on(database_url, clock) as first, engine_on(database_url, clock) as second:
        first.create_schedule("every-minute", REPORT, "* * * * *", overlap="allow")
        clock.advance(30 * 60)
        assert second.list_schedules()[0].last_tick == at(2026, 1, 5, 8, 0)
        ids = [w.workflow_id for w in runs(first, "every-minute")]
        assert len(ids) == 30 == len(set(ids))
        executors = {w.executor_id for w in runs(first, "every-minute")}
        assert executors <= {first.executor_id, second.executor_id}


# -- time zones and DST ----------------------------------------------------------------------------


def test_spring_forward_a_nonexistent_local_time_runs_once_shifted_by_the_gap(database_url):
    # 2026-03-08: New York goes from 02:00 EST straight to 03:00 EDT; 02:30 does not exist.
    clock = TestClock(at(2026, 3, 7, 12, 0))
    with engine_on(database_url, clock) as engine:
        engine.create_schedule("ny-0230", REPORT, "30 2 * * *", timezone="America/New_York")
        engine.create_schedule("ny-half", REPORT, "*/30 * * * *", timezone="America/New_York")
        engine.advance(3 * 86400)
        local = [
            dt.datetime.fromisoformat(t.removesuffix("Z") + "+00:00").astimezone(NEW_YORK)
            for t in ticks_of(engine, "ny-0230")
        ]
        assert [t.isoformat() for t in local] == [
            "2026-03-08T03:30:00-04:00",  # 02:30 did not exist: 03:30 EDT, once
            "2026-03-09T02:30:00-04:00",
            "2026-03-10T02:30:00-04:00",
        ]
        # Every 30 minutes: 02:00 and 02:30 shift onto 03:00 and 03:30, which are ticks too.
        night = [
            t for t in ticks_of(engine, "ny-half") if "2026-03-08T06" <= t < "2026-03-08T08:31"
        ]
        assert night == [
            "2026-03-08T06:00:00Z",  # 01:00 EST
            "2026-03-08T06:30:00Z",  # 01:30 EST
            "2026-03-08T07:00:00Z",  # 03:00 EDT (and the shifted 02:00)
            "2026-03-08T07:30:00Z",  # 03:30 EDT (and the shifted 02:30)
            "2026-03-08T08:00:00Z",
            "2026-03-08T08:30:00Z",
        ]


def test_fall_back_a_repeated_local_time_runs_once_at_its_first_occurrence(database_url):
    # 2026-11-01: New York goes from 02:00 EDT back to 01:00 EST; 01:30 happens twice.
    clock = TestClock(at(2026, 10, 31, 12, 0))
    with engine_on(database_url, clock) as engine:
        engine.create_schedule("ny-0130", REPORT, "30 1 * * *", timezone="America/New_York")
        engine.create_schedule("ny-quarter", REPORT, "*/15 1 * * *", timezone="America/New_York")
        engine.advance(2 * 86400)
        assert ticks_of(engine, "ny-0130") == [
            "2026-11-01T05:30:00Z",  # 01:30 EDT, the first occurrence; not 06:30Z (EST)
            "2026-11-02T06:30:00Z",  # 01:30 EST
        ]
        repeated = [t for t in ticks_of(engine, "ny-quarter") if t.startswith("2026-11-01")]
        assert repeated == [  # the first pass through 01:00-01:59 only
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:15:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T05:45:00Z",
        ]


def test_tick_arithmetic_agrees_with_itself_around_and_away_from_clock_changes():
    from durable_core import cron

    ny = cron.zone("America/New_York")
    for start, end in ((at(2026, 6, 1), at(2026, 6, 3)), (at(2026, 3, 7), at(2026, 3, 9))):
        fast = cron.ticks_between("*/20 * * * *", ny, start, end, 10_000)
        slow, tick = [], start
        while (tick := cron.next_tick("*/20 * * * *", ny, tick)) <= end:
            slow.append(tick)
        assert fast == slow and fast == sorted(set(fast))
    latest = cron.latest_ticks("* * * * * *", cron.zone("UTC"), at(2000, 1, 1), at(2026, 1, 1), 3)
    assert latest == [at(2025, 12, 31, 23, 59, 58), at(2025, 12, 31, 23, 59, 59), at(2026, 1, 1)]


# -- catch-up after downtime ----------------------------------------------------------------------


def test_catch_up_policies_after_downtime(database_url, clock):
    with engine_on(database_url, clock) as engine:
        engine.create_schedule("c-skip", REPORT, "0 * * * *", catchup="skip", overlap="allow")
        engine.create_schedule("c-latest", REPORT, "0 * * * *", catchup="latest", overlap="allow")
        engine.create_schedule(
            "c-all", REPORT, "0 * * * *", catchup="all", max_catchup=3, overlap="allow"
        )
        engine.advance(HOUR)  # 08:30: each fired 08:00
    clock.advance_to(at(2026, 1, 5, 17, 30))  # no scheduler runs from 08:30 to 17:30
    with engine_on(database_url, clock) as engine:
        engine.run_until_idle(advance_time=False)
        assert ticks_of(engine, "c-skip") == ["2026-01-05T08:00:00Z"]
        assert ticks_of(engine, "c-latest") == ["2026-01-05T08:00:00Z", "2026-01-05T17:00:00Z"]
        assert ticks_of(engine, "c-all") == [  # nine were missed: the latest three run
            "2026-01-05T08:00:00Z",
            "2026-01-05T15:00:00Z",
            "2026-01-05T16:00:00Z",
            "2026-01-05T17:00:00Z",
        ]
        engine.advance(HOUR)  # and all go on at 18:00
        for schedule_id in ("c-skip", "c-latest", "c-all"):
            assert ticks_of(engine, schedule_id)[-1] == "2026-01-05T18:00:00Z"
            assert engine.get_schedule(schedule_id).last_tick == at(2026, 1, 5, 18, 0)


def test_skip_still_runs_a_tick_seen_within_a_minute(database_url, clock):
    with engine_on(database_url, clock) as engine:
        engine.create_schedule("late-skip", REPORT, "0 * * * *", catchup="skip")
    clock.advance_to(at(2026, 1, 5, 8, 0, 30))  # down at the tick, back 30 s later
    with engine_on(database_url, clock) as engine:
        engine.run_until_idle(advance_time=False)
        assert ticks_of(engine, "late-skip") == ["2026-01-05T08:00:00Z"]


# -- overlap --------------------------------------------------------------------------------------


def test_overlap_skip_allow_and_cancel(tengine):
    for policy in ("skip", "allow", "cancel"):
        tengine.create_schedule(f"o-{policy}", waits, "0 * * * *", overlap=policy)
    tengine.advance(HOUR)  # 08:00: the first run of each waits for a message
    tengine.advance(HOUR)  # 09:00: the second tick, the first run still active
    assert ticks_of(tengine, "o-skip") == ["2026-01-05T08:00:00Z"]
    assert tengine.get_schedule("o-skip").last_tick == at(2026, 1, 5, 9, 0)  # consumed
    assert ticks_of(tengine, "o-allow") == ["2026-01-05T08:00:00Z", "2026-01-05T09:00:00Z"]
    first, second = runs(tengine, "o-cancel")
    assert first.status == "CANCELLED" and second.status == "PENDING"

    # Once the skipped schedule's run finishes, its next tick runs again.
    tengine.send("sched:o-skip:2026-01-05T08:00:00Z", "go", topic="done")
    tengine.run_until_idle(advance_time=False)
    tengine.advance(HOUR)
    assert ticks_of(tengine, "o-skip") == ["2026-01-05T08:00:00Z", "2026-01-05T10:00:00Z"]


# -- pause, resume, trigger, backfill, update, delete ----------------------------------------------


def test_pause_stops_ticks_and_resume_does_not_catch_up_the_paused_ones(tengine):
    tengine.create_schedule("p", REPORT, "0 * * * *", catchup="all")
    tengine.advance(HOUR)
    paused = tengine.pause_schedule("p")
    assert paused.paused and paused.next_tick is None
    tengine.advance(3 * HOUR)  # 09:00, 10:00, 11:00 pass while paused
    assert ticks_of(tengine, "p") == ["2026-01-05T08:00:00Z"]
    resumed = tengine.resume_schedule("p")
    assert not resumed.paused and resumed.next_tick == at(2026, 1, 5, 12, 0)
    tengine.advance(HOUR)
    assert ticks_of(tengine, "p") == ["2026-01-05T08:00:00Z", "2026-01-05T12:00:00Z"]


def test_trigger_runs_now_even_when_paused(tengine):
    tengine.create_schedule("t", REPORT, "0 0 1 1 *", paused=True, args=["now"])
    handle = tengine.trigger_schedule("t")
    assert handle.workflow_id.startswith("sched:t:trigger:")
    assert handle.result(timeout=10)["at"] == "2026-01-05T07:30:00+00:00"
    assert tengine.get_schedule("t").last_workflow_id == handle.workflow_id
    again = tengine.trigger_schedule("t", workflow_id="my-run")
    assert again.workflow_id == "my-run" and again.result(timeout=10)["args"] == ["now"]


def test_backfill_runs_each_tick_of_a_range_once(tengine):
    tengine.create_schedule("b", REPORT, "0 6 * * *", timezone="Europe/Paris")
    handles = tengine.backfill_schedule("b", at(2025, 12, 1), at(2025, 12, 4, 5, 0))
    assert [h.workflow_id for h in handles] == [
        "sched:b:2025-12-01T05:00:00Z",
        "sched:b:2025-12-02T05:00:00Z",
        "sched:b:2025-12-03T05:00:00Z",  # a tick exactly at the end is not included
    ]
    assert all(h.created for h in handles)
    assert [h.result(timeout=10)["at"][:10] for h in handles] == [
        "2025-12-01",
        "2025-12-02",
        "2025-12-03",
    ]
    again = tengine.backfill_schedule("b", at(2025, 12, 2), at(2025, 12, 6))
    assert [h.created for h in again] == [False, False, True, True]  # ran before: not again
    assert len(runs(tengine, "b")) == 5
    assert tengine.get_schedule("b").last_tick is None  # backfill leaves the schedule's ticks
    tengine.create_schedule("every-minute", REPORT, "* * * * *")
    with pytest.raises(ConfigurationError, match=f"more than {MAX_BACKFILL}"):
        tengine.backfill_schedule("every-minute", at(2025, 1, 1), at(2025, 1, 8))  # 10,080
    assert runs(tengine, "every-minute") == []
    with pytest.raises(ConfigurationError, match="aware datetime"):
        tengine.backfill_schedule("b", dt.datetime(2025, 1, 1), at(2025, 2, 1))
    with pytest.raises(ConfigurationError, match="end must be after start"):
        tengine.backfill_schedule("b", at(2025, 2, 1), at(2025, 1, 1))


def test_update_counts_a_new_cron_from_now_and_delete_keeps_runs(tengine):
    tengine.create_schedule("u", REPORT, "0 * * * *", catchup="all")
    tengine.advance(HOUR)  # 08:00 ran
    updated = tengine.update_schedule("u", cron="*/15 * * * *", args=[2], overlap="allow")
    assert updated.cron == "*/15 * * * *" and updated.args == (2,)
    assert updated.next_tick == at(2026, 1, 5, 8, 45)  # from now (08:30), none caught up
    tengine.advance(HOUR)
    assert ticks_of(tengine, "u") == [
        "2026-01-05T08:00:00Z",
        "2026-01-05T08:45:00Z",
        "2026-01-05T09:00:00Z",
        "2026-01-05T09:15:00Z",
        "2026-01-05T09:30:00Z",
    ]
    with pytest.raises(TypeError, match="unexpected arguments: colour"):
        tengine.update_schedule("u", colour="red")
    tengine.delete_schedule("u")
    assert tengine.list_schedules() == []
    for call in (tengine.get_schedule, tengine.pause_schedule, tengine.delete_schedule):
        with pytest.raises(ScheduleNotFound, match="'u'"):
            call("u")
    tengine.advance(HOUR)
    assert len(runs(tengine, "u")) == 5  # no more ticks; the runs stay


def test_bad_input_is_refused_with_a_clear_error(tengine):
    tengine.create_schedule("dup", REPORT, "0 * * * *")
    with pytest.raises(ScheduleConflict, match="exists already"):
        tengine.create_schedule("dup", REPORT, "0 * * * *")
    with pytest.raises(ConfigurationError, match="invalid cron expression 'every day'"):
        tengine.create_schedule("x", REPORT, "every day")
    with pytest.raises(ConfigurationError, match="unknown time zone 'Mars/Olympus'"):
        tengine.create_schedule("x", REPORT, "0 * * * *", timezone="Mars/Olympus")
    with pytest.raises(ConfigurationError, match="catchup must be one of skip, latest, all"):
        tengine.create_schedule("x", REPORT, "0 * * * *", catchup="some")
    with pytest.raises(ConfigurationError, match="overlap must be one of skip, allow, cancel"):
        tengine.create_schedule("x", REPORT, "0 * * * *", overlap="queue")
    with pytest.raises(ConfigurationError, match="max_catchup"):
        tengine.create_schedule("x", REPORT, "0 * * * *", max_catchup=0)
    with pytest.raises(ConfigurationError, match="schedule_id"):
        tengine.create_schedule("", REPORT, "0 * * * *")
    with pytest.raises(ConfigurationError, match="invalid cron"):
        tengine.update_schedule("dup", cron="61 * * * *")
    assert [s.schedule_id for s in tengine.list_schedules()] == ["dup"]


# -- @scheduled is a code-defined schedule ----------------------------------------------------------


def test_scheduled_workflows_are_listed_as_code_defined_and_can_be_paused(database_url, clock):
    name = hourly_code.__durable_workflow__.name
    with engine_on(database_url, clock, schedules=[hourly_code]) as engine:
        [code] = engine.list_schedules()
        assert code.schedule_id == name and code.code_defined and code.overlap == "allow"
        engine.advance(HOUR)
        assert ticks_of(engine, name) == ["2026-01-05T08:00:00Z"]  # the IDs @scheduled gave
        with pytest.raises(ScheduleConflict, match="defined by @scheduled"):
            engine.update_schedule(name, cron="*/5 * * * *")
        engine.update_schedule(name, overlap="skip")  # other settings may change
        engine.pause_schedule(name)
        engine.advance(2 * HOUR)
        assert ticks_of(engine, name) == ["2026-01-05T08:00:00Z"]
    # A later launch keeps what was set (paused) rather than resetting it from the code.
    with engine_on(database_url, clock, schedules=[hourly_code]) as engine:
        [code] = engine.list_schedules()
        assert code.paused and code.overlap == "skip"
    # An engine whose code does not have it @scheduled does not fire it.
    clock.advance(HOUR)
    with engine_on(database_url, clock) as engine:
        engine.resume_schedule(name)
        engine.advance(3 * HOUR)
        assert ticks_of(engine, name) == ["2026-01-05T08:00:00Z"]


# -- the Client and the async twins ----------------------------------------------------------------


def test_a_client_manages_schedules_and_its_runs_are_enqueued(tengine, database_url):
    with Client(database_url) as client:
        client.create_schedule("from-client", REPORT, "0 * * * *", kwargs={"by": "client"})
        assert [s.schedule_id for s in client.list_schedules()] == ["from-client"]
        handle = client.trigger_schedule("from-client")
        assert handle.status().queue == "_durable_internal"  # for any worker that knows it
        tengine.run_until_idle(advance_time=False)
        assert handle.result(timeout=10)["kwargs"] == {"by": "client"}
        client.pause_schedule("from-client")
        assert tengine.get_schedule("from-client").paused
        backfilled = client.backfill_schedule("from-client", at(2026, 1, 1), at(2026, 1, 1, 2))
        assert [h.status().status for h in backfilled] == ["ENQUEUED", "ENQUEUED"]
        client.delete_schedule("from-client")
    assert tengine.list_schedules() == []


def test_a_schedule_with_a_queue_enqueues_each_run_there(tengine):
    tengine.create_schedule("queued", REPORT, "0 * * * *", queue="sched-rt-queue")
    tengine.advance(HOUR)
    [run] = runs(tengine, "queued")
    assert run.queue == "sched-rt-queue"


def test_async_twins(tengine):
    async def main() -> None:
        created = await tengine.create_schedule_async("a", REPORT, "0 * * * *", overlap="allow")
        assert created.schedule_id == "a"
        assert [s.schedule_id for s in await tengine.list_schedules_async()] == ["a"]
        assert (await tengine.pause_schedule_async("a")).paused
        assert not (await tengine.resume_schedule_async("a")).paused
        assert (await tengine.update_schedule_async("a", catchup="all")).catchup == "all"
        assert (await tengine.get_schedule_async("a")).catchup == "all"
        handle = await tengine.trigger_schedule_async("a")
        assert (await handle.result_async(timeout=10))["args"] == []
        backfilled = await tengine.backfill_schedule_async("a", at(2026, 1, 1), at(2026, 1, 1, 1))
        assert len(backfilled) == 1
        await tengine.delete_schedule_async("a")

    asyncio.run(main())
    assert tengine.list_schedules() == []
