"""The admin's operations details: a step's attempts on the timeline, what a wait waits for
(a message on a topic, or another workflow's event) with its deadline, and executors' liveness
judged by the database's clock, not the web host's. Run on each backend
(``DURABLE_DJANGO_DB=sqlite|postgres``)."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from django.contrib.auth.models import User

from durable_core import start_workflow
from tests.django.conftest import wait_for
from tests.django.testapp import workflows as wf

CHANGELIST = "/admin/django_durable/workflow/"


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


@pytest.fixture
def superuser(web_engine, client):
    user = User.objects.create_superuser(f"admin-{uuid.uuid4().hex[:6]}", "a@example.com", "pw")
    client.force_login(user)
    return user


def detail(client, workflow_id: str) -> str:
    return page(client, f"{CHANGELIST}{workflow_id}/change/")


def test_the_timeline_shows_a_retried_steps_attempts(superuser, client, web_engine):
    handle = start_workflow(wf.retried_step, uuid.uuid4().hex)
    assert handle.result(timeout=30) == "third time lucky"
    html = detail(client, handle.workflow_id)
    assert re.findall(r'<td class="durable-attempts">(\d+)</td>', html) == ["3"]
    assert [s.attempts for s in web_engine.list_steps(handle.workflow_id)] == [3]


def test_a_recv_wait_names_its_topic_and_a_get_event_wait_its_workflow_and_key(
    superuser, client, web_engine
):
    receiver = start_workflow(wf.waiter)
    wait_for(lambda: len(web_engine.store.load_steps(receiver.workflow_id)) == 1, what="a mark")
    html = detail(client, receiver.workflow_id)
    waiting = re.search(r'id="durable-waiting">([^<]*)<', html).group(1)
    assert "Waiting for a message on topic &#x27;go&#x27; (step 1) until " in waiting
    assert "event" not in waiting

    reader = start_workflow(wf.awaits_event, receiver.workflow_id)
    wait_for(lambda: len(web_engine.store.load_steps(reader.workflow_id)) == 1, what="a mark")
    html = detail(client, reader.workflow_id)
    waiting = re.search(r'id="durable-waiting">([^<]*)<', html).group(1)
    assert (
        f"Waiting for event &#x27;approved&#x27; of workflow {receiver.workflow_id} (step 1) "
        "until " in waiting
    )
    assert "message" not in waiting
    web_engine.cancel_workflow(receiver.workflow_id)
    web_engine.cancel_workflow(reader.workflow_id)


def _row(html: str, executor_id: str) -> str:
    start = html.index(f'data-executor="{executor_id}"')
    return html[start : html.index("</tr>", start)]


@pytest.mark.parametrize("skew", [3600, -3600])
def test_executor_liveness_is_judged_by_the_database_clock(
    superuser, client, web_engine, monkeypatch, skew
):
    """A web host whose clock is an hour ahead (or behind) shows a live executor live and a
    dead one dead, as the workers judge them."""
    lease_ms = int(web_engine.lease_seconds * 1000)
    now = web_engine.store.database_time_ms()
    lost = f"lost-{uuid.uuid4().hex[:8]}"
    web_engine.store.run(
        "INSERT INTO durable_executors (executor_id, application_version, hostname, pid, "
        "started_at, heartbeat_at) VALUES (%s, %s, %s, %s, %s, %s)",
        (lost, "v0", "gone.example", 1, now - 10 * lease_ms, now - 2 * lease_ms),
    )
    try:
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + skew)
        html = page(client, f"{CHANGELIST}executors/")
        monkeypatch.undo()
        assert ">live<" in _row(html, web_engine.executor_id)
        assert ">dead<" in _row(html, lost)
    finally:
        web_engine.store.run("DELETE FROM durable_executors WHERE executor_id = %s", (lost,))


def test_a_held_back_workflow_is_judged_by_the_database_clock(
    superuser, client, web_engine, monkeypatch
):
    handle = wf.test_queue.enqueue(wf.adder, 1, 1, delay=600)
    try:
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 3600)  # the host is an hour ahead
        html = detail(client, handle.workflow_id)
        monkeypatch.undo()
        assert "Enqueued, held back until " in html
    finally:
        web_engine.cancel_workflow(handle.workflow_id)
