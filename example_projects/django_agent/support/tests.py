"""The helpdesk's tests, on the test toolkit: the agent runs in the test's own thread (no
``durable_worker``, no network: the default model is scripted), a week without a decision
takes no time, and a crash at any model request, tool call or step still answers the ticket
once.

    python manage.py test support
"""

from __future__ import annotations

import time

from django.contrib.auth.models import User
from django.urls import reverse

from django_durable.testing import DurableTestCase
from durable_core.contrib.pydantic_ai import APPROVAL_TOPIC

from .models import Ticket, ticket_workflow_id

REFUND_STEPS = [
    "support.workflows.load_ticket",
    "model:support-desk",
    "tool:check_order",
    "model:support-desk",
    "durable.set_event",  # the pending refund, for the ticket page
    "durable.recv",  # the staff member's decision
    "durable.set_event",
    "tool:issue_refund",
    "model:support-desk",
    "support.workflows.save_reply",
]


class TicketTests(DurableTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        cls.staff = User.objects.create_user("staff", password="pw", is_staff=True)

    def open(self, order_ref: str, message: str) -> int:
        response = self.client.post(
            reverse("support:open-ticket"), {"order_ref": order_ref, "message": message}
        )
        self.assertEqual(response.status_code, 302)
        return int(response.url.rstrip("/").rsplit("/", 1)[1])

    def decide(self, pk: int, approved: bool, comment: str = "") -> None:
        self.client.force_login(self.staff)
        self.client.post(
            reverse("support:ticket-decision", args=[pk]),
            {"approved": "yes" if approved else "no", "comment": comment},
        )

    def steps(self, pk: int) -> list[str]:
        return [s.name for s in self.durable.list_steps(ticket_workflow_id(pk))]

    def test_a_refund_waits_for_a_staff_members_approval(self):
        pk = self.open("A-1001", "Please refund my order, it arrived broken.")
        self.durable.run_until_idle(advance_time=False)  # asked for the refund; now waits
        [call] = self.durable.get_event(ticket_workflow_id(pk), APPROVAL_TOPIC, timeout=0)
        self.assertEqual(call["tool_name"], "issue_refund")
        page = self.client.get(reverse("support:ticket-detail", args=[pk])).content.decode()
        self.assertIn("issue_refund", page)
        self.assertIn("log in", page)  # only staff decide
        self.assertEqual(Ticket.objects.get(pk=pk).status, "open")

        self.decide(pk, approved=True)
        result = self.durable.retrieve_workflow(ticket_workflow_id(pk)).result(timeout=10)
        ticket = Ticket.objects.get(pk=pk)
        self.assertEqual(
            (ticket.status, ticket.refund_cents), ("answered", call["args"]["amount_cents"])
        )
        self.assertIn("We refunded", ticket.reply)
        self.assertEqual(result["reply"], ticket.reply)
        self.assertEqual(self.steps(pk), REFUND_STEPS)

    def test_a_refusal_reaches_the_model_with_its_reason(self):
        pk = self.open("A-1002", "Refund please.")
        self.durable.run_until_idle(advance_time=False)
        self.decide(pk, approved=False, comment="the return window has closed")
        self.durable.retrieve_workflow(ticket_workflow_id(pk)).result(timeout=10)
        ticket = Ticket.objects.get(pk=pk)
        self.assertEqual(ticket.refund_cents, 0)
        self.assertIn("the return window has closed", ticket.reply)
        self.assertNotIn("tool:issue_refund", self.steps(pk))  # a refused call never ran

    def test_a_question_needs_no_approval(self):
        pk = self.open("late-7", "Where is my parcel?")
        self.durable.retrieve_workflow(ticket_workflow_id(pk)).result(timeout=10)
        self.assertIn("not been delivered yet", Ticket.objects.get(pk=pk).reply)
        self.assertNotIn("durable.recv", self.steps(pk))

    def test_only_staff_decide(self):
        pk = self.open("A-1003", "Refund please.")
        self.durable.run_until_idle(advance_time=False)
        response = self.client.post(
            reverse("support:ticket-decision", args=[pk]), {"approved": "yes"}
        )
        self.assertEqual(response.status_code, 302)
        self.assertIn("/admin/login/", response.url)
        self.assertEqual(
            self.durable.retrieve_workflow(ticket_workflow_id(pk)).status().status, "PENDING"
        )

    def test_a_week_without_a_decision_refuses_without_waiting_a_week(self):
        started, virtual = time.perf_counter(), self.durable.clock.time()
        pk = self.open("A-1004", "Refund please.")
        self.durable.retrieve_workflow(ticket_workflow_id(pk)).result(timeout=10)
        self.assertGreaterEqual(self.durable.clock.time() - virtual, 7 * 24 * 3600)
        self.assertLess(time.perf_counter() - started, 5)
        self.assertIn("No decision arrived", Ticket.objects.get(pk=pk).reply)

    def test_a_crash_at_any_step_answers_the_ticket_once(self):
        for step in ["model:support-desk", "tool:check_order", "tool:issue_refund", "save_reply"]:
            for where in ("before", "during", "after"):
                with self.subTest(step=step, where=where):
                    crash = getattr(self.durable, f"crash_{where}")(step)
                    pk = self.open(f"A-{step}-{where}", "Refund please.")
                    self.durable.run_until_idle(advance_time=False)
                    if crash.fired:  # before the approval: what a restarted worker does
                        self.durable.recover()
                        self.durable.run_until_idle(advance_time=False)
                    self.decide(pk, approved=True)
                    self.durable.run_until_idle(advance_time=False)
                    crash.wait(timeout=0)
                    self.durable.recover()
                    result = self.durable.retrieve_workflow(ticket_workflow_id(pk)).result(
                        timeout=10
                    )
                    ticket = Ticket.objects.get(pk=pk)
                    self.assertEqual(ticket.status, "answered")
                    self.assertEqual(ticket.refund_cents, result["refund_cents"])
                    self.assertGreater(ticket.refund_cents, 0)
                    self.assertEqual(self.steps(pk), REFUND_STEPS)  # nothing recorded twice
