"""The admin as the workflow dashboard."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Permission, User

from durable_core import start_workflow
from tests.django.testapp import workflows as wf


@pytest.fixture
def admin_client_(web_engine, client):
    user = User.objects.create_superuser(f"admin-{uuid.uuid4().hex[:6]}", "a@example.com", "pw")
    client.force_login(user)
    return client


CHANGELIST = "/admin/django_durable/workflow/"


def change_url(workflow_id: str) -> str:
    return f"{CHANGELIST}{workflow_id}/change/"


def test_list_filters_and_search(admin_client_):
    done = start_workflow(wf.adder, 1, 2)
    done.result(timeout=20)
    waiting = start_workflow(wf.waiter)
    page = admin_client_.get(CHANGELIST).content.decode()
    assert done.workflow_id in page and waiting.workflow_id in page
    page = admin_client_.get(CHANGELIST, {"status__exact": "SUCCESS"}).content.decode()
    assert done.workflow_id in page and waiting.workflow_id not in page
    page = admin_client_.get(CHANGELIST, {"q": waiting.workflow_id}).content.decode()
    assert waiting.workflow_id in page and done.workflow_id not in page
    admin_client_.post(
        CHANGELIST, {"action": "cancel_workflows", "_selected_action": [waiting.workflow_id]}
    )
    assert waiting.status().status == "CANCELLED"


def test_detail_shows_steps_inputs_outputs_and_children(admin_client_):
    handle = start_workflow(wf.parent, 5)
    assert handle.result(timeout=20) == 11
    page = admin_client_.get(change_url(handle.workflow_id)).content.decode()
    child_id = f"{handle.workflow_id}-1"
    assert "tests.django.testapp.workflows.adder" in page  # the child step in the timeline
    assert change_url(child_id) in page  # linked
    assert "&quot;args&quot;" in page or "args" in page  # inputs pretty-printed
    child = admin_client_.get(change_url(child_id)).content.decode()
    assert "tests.django.testapp.workflows.add" in child and "durable-step" in child


def test_actions_need_permissions(web_engine, client):
    waiting = start_workflow(wf.waiter)
    staff = User.objects.create_user(f"staff-{uuid.uuid4().hex[:6]}", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_workflow"))
    client.force_login(staff)
    page = client.get(CHANGELIST).content.decode()
    assert waiting.workflow_id in page and "cancel_workflows" not in page
    client.post(
        CHANGELIST, {"action": "cancel_workflows", "_selected_action": [waiting.workflow_id]}
    )
    assert waiting.status().status == "PENDING"
    staff.user_permissions.add(Permission.objects.get(codename="cancel_workflow"))
    staff = User.objects.get(pk=staff.pk)
    client.force_login(staff)
    assert "cancel_workflows" in client.get(CHANGELIST).content.decode()
    client.post(
        CHANGELIST, {"action": "cancel_workflows", "_selected_action": [waiting.workflow_id]}
    )
    assert waiting.status().status == "CANCELLED"


def test_queue_overview(admin_client_):
    wf.test_queue.enqueue(wf.adder, 1, 1, delay=600)
    page = admin_client_.get(f"{CHANGELIST}queues/").content.decode()
    assert "django-tests" in page and "durable-queues" in page
