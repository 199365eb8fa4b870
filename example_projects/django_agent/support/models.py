from __future__ import annotations

from django.db import models


class Ticket(models.Model):
    """A customer's request. The agent answers it; a refund needs a staff member's approval."""

    class Status(models.TextChoices):
        OPEN = "open"
        ANSWERED = "answered"

    order_ref = models.CharField(max_length=40)
    message = models.TextField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    reply = models.TextField(blank=True, default="")
    refund_cents = models.IntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)

    @property
    def workflow_id(self) -> str:
        return ticket_workflow_id(self.pk)


def ticket_workflow_id(ticket_id: int) -> str:
    """The ticket's workflow: one per ticket (a second start under it returns the first)."""
    return f"ticket-{ticket_id}"
