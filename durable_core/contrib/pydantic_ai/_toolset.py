"""The toolset wrapper: each tool call is one step named ``tool:<tool name>``, an MCP server's
tool listing one step named ``mcp:list_tools[:<toolset id>]`` and its instructions one step
named ``mcp:get_instructions[:<toolset id>]``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from pydantic import TypeAdapter
from pydantic_ai.exceptions import ApprovalRequired, CallDeferred, ModelRetry
from pydantic_ai.messages import InstructionPart
from pydantic_ai.tools import RunContext, ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool, WrapperToolset

from durable_core import step

from ._context import in_workflow

_tool_definitions: TypeAdapter[list[ToolDefinition]] = TypeAdapter(list[ToolDefinition])
_Instructions = str | InstructionPart | Sequence[str | InstructionPart] | None
# What ``get_instructions`` may return, as JSON for the step's record and back.
_instructions: TypeAdapter[Any] = TypeAdapter(
    str | InstructionPart | list[str | InstructionPart] | None
)


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
    the server changed since (its tools are rebuilt with ``MCPToolset.tool_for_tool_def``); so
    are its instructions (``include_instructions=True``).

    Inside a workflow the MCP server's session is not opened when the run starts, as Pydantic
    AI's ``__aenter__`` would: the first step that needs the server opens it, and the run closes
    it at its end. A replay whose MCP steps are all recorded never connects to the server."""

    step_options: dict[str, Any] = field(default_factory=dict)
    #: The wrapped toolsets a step entered (lazily, inside a workflow) and the run's exit leaves.
    #: Shared by the copies ``for_run``/``for_run_step`` make (``dataclasses.replace``).
    entered: list[AbstractToolset[Any]] = field(default_factory=list)

    @property
    def id(self) -> str | None:
        # An MCP server's id keys its instructions (``on_change="append"``): they are this
        # wrapper's now, so it answers to the server's id.
        return self.wrapped.id if is_mcp(self.wrapped) else None

    @property
    def list_step_name(self) -> str:
        toolset_id = self.wrapped.id
        return "mcp:list_tools" if toolset_id is None else f"mcp:list_tools:{toolset_id}"

    @property
    def instructions_step_name(self) -> str:
        toolset_id = self.wrapped.id
        return (
            "mcp:get_instructions" if toolset_id is None else f"mcp:get_instructions:{toolset_id}"
        )

    def _lazy(self) -> bool:
        """Whether the server is entered by the steps that need it rather than by the run."""
        return in_workflow() and is_mcp(self.wrapped)

    async def __aenter__(self) -> Self:
        if not self._lazy():
            await self.wrapped.__aenter__()
        return self

    async def __aexit__(self, *args: Any) -> bool | None:
        if not self._lazy():
            return await self.wrapped.__aexit__(*args)
        while self.entered:
            await self.entered.pop().__aexit__(*args)
        return None

    async def _open(self) -> AbstractToolset[Any]:
        """The wrapped server, its session opened once for the run by the first step using it
        (an entry the server counts: a run holding it open already costs nothing more)."""
        server = self.wrapped
        if self._lazy() and not any(t is server for t in self.entered):
            await server.__aenter__()
            self.entered.append(server)
        return server

    async def get_instructions(self, ctx: RunContext[Any]) -> _Instructions:
        if not self._lazy():
            return await super().get_instructions(ctx)
        server: Any = self.wrapped
        if not server.include_instructions:
            return None

        async def instructions_body() -> Any:
            opened = await self._open()
            return _instructions.dump_python(await opened.get_instructions(ctx), mode="json")

        recorded = await step(name=self.instructions_step_name, **self.step_options)(
            instructions_body
        )()
        instructions: _Instructions = _instructions.validate_python(recorded)
        return instructions

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        if not (in_workflow() and is_mcp(self.wrapped)):
            return await self.wrapped.get_tools(ctx)

        async def list_body() -> list[Any]:
            tools = await (await self._open()).get_tools(ctx)
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
            wrapped = await self._open() if self._lazy() else self.wrapped
            try:
                return {"value": await wrapped.call_tool(name, tool_args, ctx, tool)}
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
