"""The toolset wrapper: each tool call is one step named ``tool:<tool name>``, and an MCP
server's tool listing one step named ``mcp:list_tools[:<toolset id>]``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter
from pydantic_ai.exceptions import ApprovalRequired, CallDeferred, ModelRetry
from pydantic_ai.tools import RunContext, ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool, WrapperToolset

from durable_core import step

from ._context import in_workflow

_tool_definitions: TypeAdapter[list[ToolDefinition]] = TypeAdapter(list[ToolDefinition])


def _mcp_toolset_class() -> type | None:
    try:  # the ``mcp`` extra of pydantic-ai-slim: without it there are no MCP toolsets
        from pydantic_ai.mcp import MCPToolset
    except ImportError:
        return None
    return MCPToolset


def is_mcp(toolset: AbstractToolset[Any]) -> bool:
    cls = _mcp_toolset_class()
    return cls is not None and isinstance(toolset, cls)


@dataclass
class DurableToolset(WrapperToolset[Any]):
    """Runs ``call_tool`` of the wrapped toolset as a checkpointed step.

    The outcomes Pydantic AI treats as control flow (``ModelRetry``, ``CallDeferred``,
    ``ApprovalRequired``) are recorded as values and raised again, on replay too, so the agent
    takes the same path; any other exception is the step's recorded failure.

    For an MCP server (``pydantic_ai.mcp.MCPToolset``) the tool listing is a step too: its tool
    definitions are recorded, so a replay offers the model the tools the first run saw, even if
    the server changed since (its tools are rebuilt with ``MCPToolset.tool_for_tool_def``)."""

    step_options: dict[str, Any] = field(default_factory=dict)

    @property
    def list_step_name(self) -> str:
        toolset_id = self.wrapped.id
        return "mcp:list_tools" if toolset_id is None else f"mcp:list_tools:{toolset_id}"

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        if not (in_workflow() and is_mcp(self.wrapped)):
            return await self.wrapped.get_tools(ctx)

        async def list_body() -> list[Any]:
            tools = await self.wrapped.get_tools(ctx)
            dumped: list[Any] = _tool_definitions.dump_python(
                [tool.tool_def for tool in tools.values()], mode="json"
            )
            return dumped

        recorded = await step(name=self.list_step_name, **self.step_options)(list_body)()
        server: Any = self.wrapped
        return {
            definition.name: server.tool_for_tool_def(definition, ctx=ctx)
            for definition in _tool_definitions.validate_python(recorded)
        }

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
