"""Durable Pydantic AI agents (extra ``pydantic-ai``): ``DurableAgent(agent)`` runs each model
request and tool call as a checkpointed step. See docs/agents.md."""

from ._agent import APPROVAL_TOPIC, EVENTS_STREAM, DurableAgent
from ._model import DurableModel
from ._toolset import DurableToolset

__all__ = ["DurableAgent", "DurableModel", "DurableToolset", "EVENTS_STREAM", "APPROVAL_TOPIC"]
