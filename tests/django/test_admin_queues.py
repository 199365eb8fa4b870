"""The admin's queues page manages queues fleet-wide: pause, resume, limits, reset, behind
the ``manage_queues`` permission, each change logged."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User

from tests.django.testapp import workflows as wf

QUEUES = "/admin/django_durable/workflow/queues/"
NAME = wf.test_queue.name


@pytest.fixture(autouse=True)
def _queue_left_as_found(web_engine):
    """The stored pause and limits outlive the test's flush (the table is not a managed
    model's): a test that ends with the queue paused would stop every later test's work on
    it."""
    yield
    web_engine.reset_queue(NAME)
    web_engine.resume_queue(NAME)


@pytest.fixture
def superuser(web_engine, client):
    user = User.objects.create_superuser(f"admin-{uuid.uuid4().hex[:6]}", "a@example.com", "pw")
    client.force_login(user)
    return user


def html(client) -> str:
    response = client.get(QUEUES)
    assert response.status_code == 200
    return response.content.decode()


def test_pause_limits_reset_resume_from_the_queues_page(superuser, client, web_engine):
    assert f"{QUEUES}{NAME}/pause/" in html(client)
    response = client.post(f"{QUEUES}{NAME}/pause/")
    assert response.status_code == 302
    assert web_engine.get_queue(NAME).paused
    page = html(client)
    assert "durable-paused" in page and f"{QUEUES}{NAME}/resume/" in page

    client.post(
        f"{QUEUES}{NAME}/limits/",
        {"concurrency": "2", "worker_concurrency": "", "rate_limit": "10/1"},
    )
    info = web_engine.get_queue(NAME)
    assert (info.concurrency, info.rate_limit) == (2, (10, 1.0))
    assert set(info.overridden) == {"concurrency", "rate_limit"}
    client.post(f"{QUEUES}{NAME}/limits/", {"concurrency": "none"})
    assert web_engine.get_queue(NAME).concurrency is None

    bad = client.post(f"{QUEUES}{NAME}/limits/", {"worker_concurrency": "0"}, follow=True)
    assert "worker_concurrency must be" in bad.content.decode()
    bad = client.post(f"{QUEUES}{NAME}/limits/", {"rate_limit": "fast"}, follow=True)
    assert "rate_limit must be N/SECONDS" in bad.content.decode()
    assert web_engine.get_queue(NAME).worker_concurrency is None

    client.post(f"{QUEUES}{NAME}/reset/")
    assert web_engine.get_queue(NAME).overridden == () and web_engine.get_queue(NAME).paused
    client.post(f"{QUEUES}{NAME}/resume/")
    assert not web_engine.get_queue(NAME).paused
    logged = list(LogEntry.objects.filter(user=superuser).values_list("change_message", flat=True))
    assert f"Paused queue {NAME}" in logged and f"Resumed queue {NAME}" in logged
    assert any(m.startswith("Set concurrency=2, rate_limit=(10, 1.0) on queue") for m in logged)


def test_managing_queues_needs_its_permission(web_engine, client):
    staff = User.objects.create_user(f"staff-{uuid.uuid4().hex[:6]}", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_workflow"))
    client.force_login(staff)
    assert "/pause/" not in html(client)  # no buttons without the permission
    assert client.post(f"{QUEUES}{NAME}/pause/").status_code == 403
    assert client.get(f"{QUEUES}{NAME}/pause/").status_code == 403
    assert not web_engine.get_queue(NAME).paused
    staff.user_permissions.add(Permission.objects.get(codename="manage_queues"))
    client.force_login(User.objects.get(pk=staff.pk))
    assert client.post(f"{QUEUES}{NAME}/pause/").status_code == 302
    assert web_engine.get_queue(NAME).paused
