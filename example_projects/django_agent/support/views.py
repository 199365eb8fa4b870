from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

import django_durable
from durable_core.contrib.pydantic_ai import APPROVAL_TOPIC
from durable_core.errors import WorkflowNotFound

from .models import Ticket, ticket_workflow_id
from .workflows import answer_ticket, tickets


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "support/index.html", {"tickets": Ticket.objects.order_by("-pk")[:20]})


@require_POST
def open_ticket(request: HttpRequest) -> HttpResponse:
    order_ref = (request.POST.get("order_ref") or "").strip()[:40]
    message = (request.POST.get("message") or "").strip()
    if not order_ref or not message:
        return HttpResponse("order_ref and message are required", status=400)
    with transaction.atomic():
        # The ticket and its workflow commit together; the worker starts after the commit.
        ticket = Ticket.objects.create(order_ref=order_ref, message=message)
        tickets.enqueue(answer_ticket, ticket.pk, workflow_id=ticket_workflow_id(ticket.pk))
    return redirect("support:ticket-detail", pk=ticket.pk)


def ticket_detail(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = get_object_or_404(Ticket, pk=pk)
    engine = django_durable.get_engine()
    try:
        status = engine.retrieve_workflow(ticket.workflow_id).status()
    except WorkflowNotFound:
        status = None
    pending = engine.get_event(ticket.workflow_id, APPROVAL_TOPIC, timeout=0) or []
    # Refresh the page while the agent works, not while it waits for a decision.
    working = status is not None and status.status in ("ENQUEUED", "PENDING") and not pending
    context = {
        "ticket": ticket,
        "workflow": status,
        "pending": pending,
        "steps": engine.list_steps(ticket.workflow_id),
        "working": working,
    }
    return render(request, "support/ticket.html", context)


@staff_member_required
@require_POST
def decide(request: HttpRequest, pk: int) -> HttpResponse:
    """A staff member's decision on the refund the agent asks for: the waiting run receives it
    as a message and continues (a denial reaches the model with the comment)."""
    ticket = get_object_or_404(Ticket, pk=pk)
    approved = request.POST.get("approved") == "yes"
    decision: dict = {"approved": approved}
    if not approved:
        decision["message"] = request.POST.get("comment") or "Refused by the support team."
    django_durable.get_engine().send(ticket.workflow_id, decision, topic=APPROVAL_TOPIC)
    return redirect("support:ticket-detail", pk=pk)
