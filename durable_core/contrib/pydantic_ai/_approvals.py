"""Human in the loop: the decisions for tool calls that need approval, sent to the workflow.

A decision is ``True``/``False`` for every pending call, or a dict from tool call ID to ``True``,
``False`` or ``{"approved": bool, "message": str}``."""

from __future__ import annotations

from typing import Any

from pydantic_ai.tools import DeferredToolRequests, ToolDenied


def pending_calls(requests: DeferredToolRequests) -> list[dict[str, Any]]:
    """What an approver needs to see, as JSON: one entry per call awaiting a decision."""
    return [
        {
            "tool_call_id": call.tool_call_id,
            "tool_name": call.tool_name,
            "args": call.args_as_dict(),
        }
        for call in requests.approvals
    ]


def _one(value: Any) -> bool | ToolDenied:
    if isinstance(value, bool):
        return value if value else ToolDenied()
    if isinstance(value, dict) and isinstance(value.get("approved"), bool):
        if value["approved"]:
            return True
        message = value.get("message")
        return ToolDenied(message) if isinstance(message, str) else ToolDenied()
    raise TypeError(
        f"an approval decision must be a bool or {{'approved': bool, 'message': str}}, not {value!r}"
    )


def apply_decision(decision: Any, waiting: set[str], into: dict[str, bool | ToolDenied]) -> None:
    """Fold one received decision into ``into``, removing the calls it decides from ``waiting``."""
    if isinstance(decision, bool) or (isinstance(decision, dict) and "approved" in decision):
        for call_id in sorted(waiting):
            into[call_id] = _one(decision)
        waiting.clear()
        return
    if not isinstance(decision, dict):
        raise TypeError(f"an approval decision must be a bool or a dict, not {decision!r}")
    for call_id, value in decision.items():
        if call_id in waiting:
            into[call_id] = _one(value)
            waiting.discard(call_id)


def timed_out(waiting: set[str], into: dict[str, bool | ToolDenied], seconds: float) -> None:
    for call_id in sorted(waiting):
        into[call_id] = ToolDenied(f"No decision arrived within {seconds:g} seconds.")
    waiting.clear()
