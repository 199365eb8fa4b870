"""The helpdesk example (example_projects/django_agent): a Django view starts a Pydantic AI
agent run, a staff member's decision from another view lets its refund tool run. Once
through the views with a worker engine on the test database (SQLite or PostgreSQL, by
``DURABLE_DJANGO_DB``), and the example's own toolkit suite (collected here)."""

from __future__ import annotations

import pytest

pytest.importorskip("pydantic_ai")

from django.contrib.auth.models import User  # noqa: E402
from django.urls import reverse  # noqa: E402
from support.models import Ticket, ticket_workflow_id  # noqa: E402
from support.tests import REFUND_STEPS, TicketTests  # noqa: E402, F401  (collected here)

from durable_core.contrib.pydantic_ai import APPROVAL_TOPIC  # noqa: E402
from tests.django.conftest import wait_for  # noqa: E402


def test_a_ticket_through_the_views_with_a_worker(worker, transactional_db, client):
    response = client.post(
        reverse("support:open-ticket"), {"order_ref": "B-77", "message": "Refund it, please."}
    )
    assert response.status_code == 302
    pk = Ticket.objects.get().pk
    wid = ticket_workflow_id(pk)
    pending = wait_for(
        lambda: worker.get_event(wid, APPROVAL_TOPIC, timeout=0), what="the refund request"
    )
    assert [c["tool_name"] for c in pending] == ["issue_refund"]
    page = client.get(response.url).content.decode()
    assert "issue_refund" in page and "model:support-desk" in page and "tool:check_order" in page

    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert "Approve" in client.get(response.url).content.decode()
    client.post(reverse("support:ticket-decision", args=[pk]), {"approved": "yes"})
    result = worker.retrieve_workflow(wid).result(timeout=30)
    ticket = Ticket.objects.get(pk=pk)
    assert (ticket.status, ticket.refund_cents) == ("answered", pending[0]["args"]["amount_cents"])
    assert result == {"reply": ticket.reply, "refund_cents": ticket.refund_cents}
    assert [s.name for s in worker.list_steps(wid)] == REFUND_STEPS
    assert "We refunded" in client.get(response.url).content.decode()
