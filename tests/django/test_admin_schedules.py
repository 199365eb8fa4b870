"""The admin's schedules (issue 14): listed with the @scheduled ones, created and edited
through a form validated by the core, paused, resumed, run now and backfilled by actions and a
backfill page, deleted; code-defined ones keep their cron; permissions."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User

from tests.django.conftest import wait_for
from tests.django.testapp import workflows as wf

SCHEDULES = "/admin/django_durable/schedule/"
OVERVIEW = "/admin/django_durable/workflow/schedules/"
NIGHTLY = wf.nightly_report.__durable_workflow__.name


@pytest.fixture
def superuser(web_engine, client):
    user = User.objects.create_superuser(f"admin-{uuid.uuid4().hex[:6]}", "a@example.com", "pw")
    client.force_login(user)
    return user


def form(**overrides) -> dict:
    data = {
        "schedule_id": "reports/weekly",
        "workflow_name": NIGHTLY,
        "cron": "0 6 * * 1",
        "timezone": "Europe/Paris",
        "args_json": "",
        "kwargs_json": "",
        "queue_name": "",
        "catchup": "latest",
        "max_catchup": "100",
        "overlap": "skip",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_create_edit_pause_trigger_backfill_and_delete(superuser, client, web_engine):
    refused = client.post(f"{SCHEDULES}add/", form(cron="every monday", timezone="Mars/Olympus"))
    assert refused.status_code == 200
    html = refused.content.decode()
    assert "invalid cron expression" in html and "unknown time zone" in html
    assert web_engine.list_schedules() == [] or all(
        s.source == "code" for s in web_engine.list_schedules()
    )

    created = client.post(f"{SCHEDULES}add/", form())
    assert created.status_code == 302, created.content.decode()[:2000]
    stored = web_engine.get_schedule("reports/weekly")
    assert stored.timezone == "Europe/Paris" and stored.source == "api" and not stored.paused
    duplicate = client.post(f"{SCHEDULES}add/", form())
    assert "exists already" in duplicate.content.decode()

    change = f"{SCHEDULES}reports/weekly/change/"
    assert "Backfill" in client.get(change).content.decode()
    edited = client.post(change, form(overlap="cancel", catchup="all", paused="on"))
    assert edited.status_code == 302
    stored = web_engine.get_schedule("reports/weekly")
    assert stored.overlap == "cancel" and stored.catchup == "all" and stored.paused

    listing = client.get(SCHEDULES).content.decode()
    assert "reports/weekly" in listing and "paused" in listing
    overview = client.get(OVERVIEW).content.decode()
    assert "reports/weekly" in overview and "Europe/Paris" in overview

    for action in ("resume_schedules", "trigger_schedules"):
        done = client.post(SCHEDULES, {"action": action, "_selected_action": ["reports/weekly"]})
        assert done.status_code == 302
    assert not web_engine.get_schedule("reports/weekly").paused
    triggered = web_engine.get_schedule("reports/weekly").last_workflow_id
    assert triggered is not None and triggered.startswith("sched:reports/weekly:trigger:")

    backfill = f"{SCHEDULES}reports/weekly/backfill/"
    assert client.get(backfill).status_code == 200
    backwards = client.post(backfill, {"start": "2026-02-01 00:00", "end": "2026-01-01 00:00"})
    assert "end must be after start" in backwards.content.decode()
    filled = client.post(backfill, {"start": "2026-01-01 00:00", "end": "2026-01-20 00:00"})
    assert filled.status_code == 302
    ids = {w.workflow_id for w in web_engine.list_workflows(name=NIGHTLY, limit=None)}
    assert {"sched:reports/weekly:2026-01-05T05:00:00Z", "sched:reports/weekly:2026-01-12T05:00:00Z",
            "sched:reports/weekly:2026-01-19T05:00:00Z"} <= ids  # fmt: skip
    assert LogEntry.objects.filter(change_message__startswith="Backfilled").exists()

    deleted = client.post(f"{SCHEDULES}reports/weekly/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert "reports/weekly" not in [s.schedule_id for s in web_engine.list_schedules()]


def test_code_defined_schedules_are_listed_and_keep_their_cron(superuser, client, web_engine):
    overview = client.get(OVERVIEW).content.decode()
    assert NIGHTLY in overview and "0 3 * * *" in overview  # before any worker recorded it
    web_engine.create_schedule("placeholder", NIGHTLY, "0 4 * * *")  # a stored one beside it
    from django_durable.engine import build_engine

    worker = build_engine(worker=True, executor_id=f"w-{uuid.uuid4().hex[:6]}")
    worker.launch()  # its scheduler records the @scheduled workflows
    try:
        [code] = wait_for(
            lambda: [s for s in web_engine.list_schedules() if s.schedule_id == NIGHTLY],
            what="the worker to record the @scheduled workflow",
        )
    finally:
        worker.shutdown(timeout=5)
    assert code.source == "code"
    page = client.get(f"{SCHEDULES}{NIGHTLY}/change/").content.decode()
    assert 'name="cron"' not in page and "0 3 * * *" in page  # read-only: the code owns it
    saved = client.post(
        f"{SCHEDULES}{NIGHTLY}/change/", form(schedule_id=None, cron=None, overlap="skip")
    )
    assert saved.status_code == 302
    code = web_engine.get_schedule(NIGHTLY)
    assert code.cron == "0 3 * * *" and code.overlap == "skip"


def test_schedule_pages_need_permissions(web_engine, client):
    web_engine.create_schedule("perm", NIGHTLY, "0 4 * * *")
    staff = User.objects.create_user(f"staff-{uuid.uuid4().hex[:6]}", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(SCHEDULES).status_code == 403
    assert client.get(f"{SCHEDULES}perm/backfill/").status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_schedule"))
    client.force_login(User.objects.get(pk=staff.pk))
    assert client.get(SCHEDULES).status_code == 200
    assert client.get(f"{SCHEDULES}perm/backfill/").status_code == 403  # needs change
    paused = client.post(SCHEDULES, {"action": "pause_schedules", "_selected_action": ["perm"]})
    assert paused.status_code in (200, 302) and not web_engine.get_schedule("perm").paused
