"""The toolset wrapper: each tool call is one step named ``tool:<tool name>``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.exceptions import ApprovalRequired, CallDeferred, ModelRetry
from pydantic_ai.tools import RunContext
from pydantic_ai.toolsets import ToolsetTool, WrapperToolset

from durable_core import step

from ._context import in_workflow


@dataclass
class DurableToolset(WrapperToolset[Any]):
    """Runs ``call_tool`` of the wrapped toolset as a checkpointed step.

    The outcomes Pydantic AI treats as control flow (``ModelRetry``, ``CallDeferred``,
    ``ApprovalRequired``) are recorded as values and raised again, on replay too, so the agent
    takes the same path; any other exception is the step's recorded failure."""

    step_options: dict[str, Any] = field(default_factory=dict)

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        if not in_workflow():
            return await self.wrapped.call_tool(name, tool_args, ctx, tool)

        async def tool_body() -> dict[str, Any]:
            try:
                return {"value": await self.wrapped.call_tool(name, tool_args, ctx, tool)}
            except ModelRetry as retry:
                return {"retry": retry.message}
            except ApprovalRequired as needed:
                return {"approval_required": needed.metadata}
            except CallDeferred as deferred:
                return {"deferred": deferred.metadata, "kind": deferred.kind}

        outcome = await step(name=f"tool:{name}", **self.step_options)(tool_body)()
        if "retry" in outcome:
            raise ModelRetry(outcome["retry"])
        if "approval_required" in outcome:
            raise ApprovalRequired(outcome["approval_required"])
        if "deferred" in outcome:
            raise CallDeferred(outcome["deferred"], kind=outcome["kind"])
        return outcome["value"]
