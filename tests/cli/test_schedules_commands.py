"""``durable schedules list|show|create|update|pause|resume|trigger|backfill|delete``."""

from __future__ import annotations

import pytest

from durable_core import Client

from . import flows
from .conftest import assert_clean_failure

pytestmark = pytest.mark.usefixtures("engine")

REPORT = flows.scheduled_report.__durable_workflow__.name  # registered in this process


def test_schedules_from_the_command_line(engine, durable, durable_json):
    created = durable_json(
        "schedules", "create", "nightly", REPORT, "30 2 * * *", "--timezone", "Europe/Paris",
        "--kwargs", '{"label": "cli"}', "--catchup", "all", "--max-catchup", "5",
    )  # fmt: skip
    assert created["schedule_id"] == "nightly" and created["timezone"] == "Europe/Paris"
    assert created["kwargs"] == {"label": "cli"} and created["max_catchup"] == 5
    assert created["source"] == "api" and created["next_tick"].endswith("+00:00")

    listed = durable_json("schedules", "list")
    assert [s["schedule_id"] for s in listed] == ["nightly"]
    table = durable("schedules", "list")
    assert table.exit_code == 0 and "nightly" in table.stdout and "active" in table.stdout
    shown = durable("schedules", "show", "nightly")
    assert "30 2 * * * (Europe/Paris)" in shown.stdout and "all (at most 5)" in shown.stdout

    updated = durable_json("schedules", "update", "nightly", "--overlap", "cancel", "--args", "[]")
    assert updated["overlap"] == "cancel"
    assert durable_json("schedules", "pause", "nightly")["paused"] is True
    assert "Resumed schedule nightly" in durable("schedules", "resume", "nightly").stdout

    triggered = durable_json("schedules", "trigger", "nightly")
    handle = engine.retrieve_workflow(triggered["workflow_id"])
    assert handle.result(timeout=10).startswith("cli@")  # enqueued; the engine ran it

    filled = durable_json(
        "schedules", "backfill", "nightly", "--start", "2026-01-01", "--end", "2026-01-03"
    )
    assert filled["ticks"] == 2 and filled["started"] == [
        "sched:nightly:2026-01-01T01:30:00Z",
        "sched:nightly:2026-01-02T01:30:00Z",
    ]
    again = durable_json(
        "schedules", "backfill", "nightly", "--start", "2026-01-01T00:00:00+00:00",
        "--end", "2026-01-03",
    )  # fmt: skip
    assert again["started"] == []

    deleted = durable("schedules", "delete", "nightly", "--yes")
    assert deleted.exit_code == 0 and "Deleted schedule nightly" in deleted.stdout
    assert durable_json("schedules", "list") == []


def test_schedule_command_errors_are_clean(engine, durable, database_url):
    assert_clean_failure(durable("schedules", "show", "missing"), "No schedule with ID 'missing'")
    assert_clean_failure(durable("schedules", "pause", "missing"), "'missing'")
    assert_clean_failure(
        durable("schedules", "create", "x", REPORT, "every day"), "invalid cron expression"
    )
    assert_clean_failure(
        durable("schedules", "create", "x", REPORT, "0 * * * *", "--timezone", "Nowhere/City"),
        "unknown time zone",
    )
    bad_json = durable("schedules", "create", "x", REPORT, "0 * * * *", "--kwargs", "[1]")
    assert bad_json.exit_code == 2 and "must be a JSON dict" in bad_json.output
    with Client(database_url) as client:
        client.create_schedule("dup", REPORT, "0 * * * *")
    assert_clean_failure(durable("schedules", "create", "dup", REPORT, "0 * * * *"), "exists")
    assert_clean_failure(
        durable("schedules", "backfill", "dup", "--start", "2026-02-01", "--end", "2026-01-01"),
        "end must be after start",
    )
    nothing = durable("schedules", "update", "dup")
    assert nothing.exit_code == 2 and "nothing to change" in nothing.output
