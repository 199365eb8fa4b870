"""The router's schedule endpoints (issue 14): JSON, behind the router's dependencies."""
# No `from __future__ import annotations`, as in the other router tests.

import pytest

from . import flows
from .conftest import make_app, make_durable, running

NOTE = flows.scheduled_note.__durable_workflow__.name


@pytest.fixture
def durable(database_url, sync_app_engine):
    return make_durable(database_url, sync_app_engine)


async def test_schedule_endpoints(durable):
    app = make_app(durable)
    async with running(app, durable) as client:
        body = {
            "schedule_id": "team/daily",  # IDs may hold "/"
            "workflow": NOTE,
            "cron": "0 9 * * 1-5",
            "timezone": "Europe/Paris",
            "kwargs": {"note": "standup"},
        }
        created = await client.post("/durable/schedules", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["next_tick"] is not None and created.json()["source"] == "api"
        assert (await client.post("/durable/schedules", json=body)).status_code == 409

        listed = (await client.get("/durable/schedules")).json()
        assert [s["schedule_id"] for s in listed if s["source"] == "api"] == ["team/daily"]
        shown = (await client.get("/durable/schedules/team/daily")).json()
        assert shown["timezone"] == "Europe/Paris" and shown["kwargs"] == {"note": "standup"}

        patched = await client.patch(
            "/durable/schedules/team/daily", json={"overlap": "allow", "catchup": "all"}
        )
        assert patched.status_code == 200 and patched.json()["overlap"] == "allow"
        paused = (await client.post("/durable/schedules/team/daily/pause")).json()
        assert paused["paused"] is True and paused["next_tick"] is None
        resumed = (await client.post("/durable/schedules/team/daily/resume")).json()
        assert resumed["paused"] is False

        triggered = await client.post("/durable/schedules/team/daily/trigger")
        assert triggered.status_code == 201
        run = durable.engine.retrieve_workflow(triggered.json()["workflow_id"])
        assert (await run.result_async(timeout=10)).startswith("standup@")

        filled = await client.post(
            "/durable/schedules/team/daily/backfill",
            json={"start": "2026-01-05T00:00:00Z", "end": "2026-01-08T00:00:00"},
        )
        assert filled.json()["workflow_ids"] == [
            "sched:team/daily:2026-01-05T08:00:00Z",
            "sched:team/daily:2026-01-06T08:00:00Z",
            "sched:team/daily:2026-01-07T08:00:00Z",
        ]
        assert filled.json()["started"] == filled.json()["workflow_ids"]

        assert (await client.delete("/durable/schedules/team/daily")).status_code == 204
        missing = await client.get("/durable/schedules/team/daily")
        assert missing.status_code == 404 and "team/daily" in missing.json()["detail"]


async def test_schedule_endpoints_refuse_bad_input_and_need_the_dependencies(durable):
    app = make_app(durable)
    async with running(app, durable) as client:
        base = {"schedule_id": "s", "workflow": NOTE, "cron": "0 * * * *"}
        for wrong, fragment in (
            ({"cron": "every day"}, "invalid cron expression"),
            ({"timezone": "Mars/Olympus"}, "unknown time zone"),
            ({"catchup": "sometimes"}, "catchup"),
            ({"colour": "red"}, "colour"),
        ):
            refused = await client.post("/durable/schedules", json={**base, **wrong})
            assert refused.status_code == 422, refused.text
            assert fragment in refused.text
        assert (await client.post("/durable/schedules", json=base)).status_code == 201
        backwards = await client.post(
            "/durable/schedules/s/backfill",
            json={"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
        )
        assert backwards.status_code == 422 and "end must be after start" in backwards.text
        assert (await client.patch("/durable/schedules/s", json={})).status_code == 422
        assert (await client.post("/durable/schedules/nope/pause")).status_code == 404
        assert (await client.delete("/durable/schedules/nope")).status_code == 404

        anonymous = {"Authorization": ""}
        for method, path in (
            ("GET", "/durable/schedules"),
            ("POST", "/durable/schedules/s/trigger"),
            ("DELETE", "/durable/schedules/s"),
        ):
            denied = await client.request(method, path, headers=anonymous)
            assert denied.status_code == 401
        assert [s.schedule_id for s in durable.engine.list_schedules() if s.source == "api"] == [
            "s"
        ]
