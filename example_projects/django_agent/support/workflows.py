"""The ticket agent: a Pydantic AI agent made durable with ``DurableAgent``, run by
``manage.py durable_worker`` from the ``support`` queue.

Each model request is a step ``model:<model name>`` and each tool call a step
``tool:<tool name>``; ``issue_refund`` needs a staff member's approval, sent from the ticket
page (``views.decide``): the run waits for it durably, for days if need be, holding no
thread. The reply is saved by a ``@transaction`` step: exactly once.

Discovered by django_durable at startup (every installed app's ``workflows.py``).
"""

from __future__ import annotations

import hashlib
import os
import re

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_core import Queue, step, transaction, workflow
from durable_core.contrib.pydantic_ai import DurableAgent

from .models import Ticket

# Tickets are enqueued by the web process and answered by `manage.py durable_worker`.
tickets = Queue("support", worker_concurrency=4)

INSTRUCTIONS = """You answer a shop's support tickets. Call check_order for the order the
ticket names. If the customer asks for a refund of a delivered order, call issue_refund with
the order's amount (a staff member approves it). Then reply to the customer in two sentences."""


# -- the default model: scripted, no network ----------------------------------------------------


def _returns(messages: list[ModelMessage], tool_name: str) -> list[ToolReturnPart]:
    return [
        part
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart) and part.tool_name == tool_name
    ]


def scripted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """What a careful support agent would do at this point of the conversation."""
    prompt = next(
        p.content
        for m in messages
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, UserPromptPart) and isinstance(p.content, str)
    )
    checked = _returns(messages, "check_order")
    if not checked:
        ref = re.search(r"order (\S+):", prompt)
        args = {"order_ref": ref.group(1) if ref else "unknown"}
        return ModelResponse(parts=[ToolCallPart("check_order", args, "check-1")])
    order = checked[-1].content
    refunds = _returns(messages, "issue_refund")
    if "refund" in prompt.lower() and order["delivered"] and not refunds:
        args = {"order_ref": order["order_ref"], "amount_cents": order["amount_cents"]}
        return ModelResponse(parts=[ToolCallPart("issue_refund", args, "refund-1")])
    if refunds and refunds[-1].outcome == "success":
        reply = f"We refunded {order['amount_cents'] / 100:.2f} for order {order['order_ref']}."
    elif refunds:
        reply = f"We cannot refund order {order['order_ref']}: {refunds[-1].content}"
    else:
        reply = f"Order {order['order_ref']} is on its way; it has not been delivered yet."
    return ModelResponse(parts=[TextPart(reply + " Thank you for your patience.")])


def choose_model() -> Model | str:
    """``AGENT_MODEL`` (a Pydantic AI model name) if set, else the scripted model."""
    return os.environ.get("AGENT_MODEL") or FunctionModel(scripted, model_name="support-desk")


support_agent = Agent(choose_model(), name="support", instructions=INSTRUCTIONS)


@support_agent.tool_plain
def check_order(order_ref: str) -> dict:
    """The order's amount and whether it was delivered (a stand-in for the shop's order API)."""
    digest = int(hashlib.sha256(order_ref.encode()).hexdigest(), 16)
    return {
        "order_ref": order_ref,
        "amount_cents": 500 + digest % 9500,
        "delivered": not order_ref.startswith("late"),
    }


@support_agent.tool_plain(requires_approval=True)
def issue_refund(order_ref: str, amount_cents: int) -> dict:
    """Refund the order (a stand-in for the payment provider, whose idempotency key is the
    order ref, so a call re-run after a crash refunds once). A staff member approves first."""
    return {"refund_id": "rf_" + hashlib.sha256(order_ref.encode()).hexdigest()[:12]}


# Nobody reads this agent's events, so no event stream: model requests are not streamed.
support = DurableAgent(support_agent, stream_key=None, approval_timeout=7 * 24 * 3600)


# -- the workflow --------------------------------------------------------------------------------


@step
def load_ticket(ticket_id: int) -> dict:
    ticket = Ticket.objects.get(pk=ticket_id)
    return {"order_ref": ticket.order_ref, "message": ticket.message}


@transaction
def save_reply(ticket_id: int, reply: str, refund_cents: int) -> None:
    Ticket.objects.filter(pk=ticket_id).update(
        status=Ticket.Status.ANSWERED, reply=reply, refund_cents=refund_cents
    )


@workflow(name="support.answer_ticket")
def answer_ticket(ticket_id: int) -> dict:
    ticket = load_ticket(ticket_id)
    result = support.run_sync(f"Ticket about order {ticket['order_ref']}: {ticket['message']}")
    messages = result.all_messages()
    refunded = [r for r in _returns(messages, "issue_refund") if r.outcome == "success"]
    amount = _returns(messages, "check_order")[-1].content["amount_cents"] if refunded else 0
    save_reply(ticket_id, str(result.output), amount)
    return {"reply": str(result.output), "refund_cents": amount}
