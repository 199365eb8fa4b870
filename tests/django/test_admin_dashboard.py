"""The admin is the dashboard: timeline, waits, events/messages/streams, tracebacks,
actions behind confirmation pages that hand the work to workers, LogEntry per action,
permissions on every page, executors and schedules."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User

from durable_core import start_workflow
from tests.django.conftest import wait_for
from tests.django.testapp import workflows as wf

CHANGELIST = "/admin/django_durable/workflow/"


def page(client, url: str, **params) -> str:
    response = client.get(url, params)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


@pytest.fixture
def superuser(web_engine, client):
    user = User.objects.create_superuser(f"admin-{uuid.uuid4().hex[:6]}", "a@example.com", "pw")
    client.force_login(user)
    return user


def detail(workflow_id: str) -> str:
    return f"{CHANGELIST}{workflow_id}/change/"


def test_waiting_workflow_says_what_it_waits_for_and_shows_events_and_streams(
    superuser, client, web_engine
):
    handle = start_workflow(wf.chatty, 3)
    wait_for(lambda: web_engine.get_event(handle.workflow_id, "progress", timeout=0))
    web_engine.send(handle.workflow_id, "not this one", topic="other")
    wait_for(lambda: len(web_engine.list_steps(handle.workflow_id)) >= 5, what="steps")

    # The wait's mark is written as the recv starts waiting, after the steps before it.
    def waiting_page() -> str | None:
        html = page(client, detail(handle.workflow_id))
        return html if "Waiting for a message" in html else None

    html = wait_for(waiting_page, what="the page to show the wait")
    assert 'id="durable-waiting"' in html and "Waiting for a message" in html
    assert 'id="durable-events"' in html and "progress" in html and "&quot;done&quot;: 3" in html
    assert 'id="durable-streams"' in html and "tokens (3 values, closed)" in html
    assert 'id="durable-messages"' in html and "not this one" in html and "not yet" in html
    assert "durable.write_stream" in html and "wait for" not in html.split("durable-steps")[0]


def test_failure_shows_type_message_and_the_traceback_with_its_cause(superuser, client):
    handle = start_workflow(wf.fails_in_a_step, 5)
    with pytest.raises(Exception, match="declined 5"):
        handle.result(timeout=20)
    html = page(client, detail(handle.workflow_id))
    assert "Declined: declined 5" in html
    assert 'id="durable-traceback"' in html and "Traceback (most recent call last)" in html
    assert "ConnectionError: card network down" in html and "direct cause" in html


def test_cancel_button_confirms_then_cancels_and_logs(superuser, client):
    handle = start_workflow(wf.waiter)
    html = page(client, detail(handle.workflow_id))
    assert f"{handle.workflow_id}/cancel/" in html and "Fork from a step" in html
    confirm = page(client, f"{CHANGELIST}{handle.workflow_id}/cancel/")
    assert "durable-confirm" in confirm and handle.status().status == "PENDING"
    response = client.post(f"{CHANGELIST}{handle.workflow_id}/cancel/")
    assert response.status_code == 302
    assert handle.status().status == "CANCELLED"
    entry = LogEntry.objects.filter(object_id=handle.workflow_id).get()
    assert entry.user == superuser and "Cancelled" in entry.get_change_message()


def test_resume_and_fork_hand_the_work_to_workers(superuser, client, web_engine):
    """A web process never runs them (a fork of a checkout would charge again in the web
    process): the rows wait for a worker, which then runs them."""
    source = start_workflow(wf.step_then_wait, 4)
    wait_for(lambda: web_engine.list_steps(source.workflow_id), what="first step")
    web_engine.cancel_workflow(source.workflow_id)
    client.post(f"{CHANGELIST}{source.workflow_id}/resume/")
    assert source.status().status == "ENQUEUED"
    new_id = f"fork-{uuid.uuid4().hex[:6]}"
    response = client.post(
        f"{CHANGELIST}{source.workflow_id}/fork/",
        {"start_step": "2", "new_workflow_id": new_id},
        follow=True,
    )
    assert new_id in response.content.decode()  # the new workflow's page, and the message
    fork = web_engine.retrieve_workflow(new_id)
    assert fork.status().status == "ENQUEUED"
    assert [s.name for s in web_engine.list_steps(new_id)] == [
        "tests.django.testapp.workflows.add"
    ]  # step 1 copied, not re-run
    messages = [
        e.get_change_message() for e in LogEntry.objects.filter(object_id=source.workflow_id)
    ]
    assert any("Resumed" in m for m in messages) and any(
        "Forked from step 2" in m for m in messages
    )

    from django_durable.engine import build_engine

    worker = build_engine(worker=True, executor_id=f"w-{uuid.uuid4().hex[:6]}", run_scheduler=False)
    worker.launch()
    try:
        wait_for(lambda: fork.status().status == "PENDING", what="a worker took the fork")
        assert fork.status().executor_id == worker.executor_id
        worker.send(new_id, "go", topic="go")
        assert fork.result(timeout=20) == "go"
    finally:
        worker.shutdown(timeout=5)


def test_pages_need_the_view_permission(web_engine, client):
    staff = User.objects.create_user(f"staff-{uuid.uuid4().hex[:6]}", password="pw", is_staff=True)
    client.force_login(staff)
    for url in ("queues/", "executors/", "schedules/"):
        assert client.get(f"{CHANGELIST}{url}").status_code == 403, url
    handle = start_workflow(wf.waiter)
    assert client.get(f"{CHANGELIST}{handle.workflow_id}/cancel/").status_code == 403
    assert client.post(f"{CHANGELIST}{handle.workflow_id}/cancel/").status_code == 403
    assert handle.status().status == "PENDING"
    staff.user_permissions.add(Permission.objects.get(codename="view_workflow"))
    client.force_login(User.objects.get(pk=staff.pk))
    assert client.get(f"{CHANGELIST}queues/").status_code == 200
    html = page(client, detail(handle.workflow_id))
    assert "/cancel/" not in html  # no buttons without the action permissions


def test_queues_executors_and_schedules(superuser, client, web_engine):
    wf.test_queue.enqueue(wf.adder, 1, 1, delay=600)
    queues = page(client, f"{CHANGELIST}queues/")
    assert "django-tests" in queues and "_durable_internal" not in queues
    executors = page(client, f"{CHANGELIST}executors/")
    assert web_engine.executor_id in executors and "live" in executors
    schedules = page(client, f"{CHANGELIST}schedules/")
    assert "tests.django.testapp.workflows.nightly_report" in schedules and "0 3 * * *" in schedules


def test_task_rows_show_the_task_name(superuser, client, worker):
    from tests.django.testapp import tasks

    result = tasks.multiply.enqueue(2, 3)
    html = page(client, CHANGELIST)
    assert "task tests.django.testapp.tasks.multiply" in html
    assert result.id in html
