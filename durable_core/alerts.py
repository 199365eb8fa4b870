"""Alert hooks: callables an application passes to its ``Engine`` to hear of failures.

``Engine(on_workflow_failed=fn, on_dead_letter=fn)``: ``on_workflow_failed(workflow_id, name,
error)`` runs after a workflow's ERROR outcome is recorded (the failure is also logged at ERROR
with its ID and name by ``durable_core.execution``); ``on_dead_letter(workflow_id, name)`` runs
after a workflow is dead-lettered (``MAX_RECOVERY_ATTEMPTS_EXCEEDED``, logged at ERROR by
``durable_core.recovery``). Hooks run in the thread that recorded the outcome, after the
commit; keep them quick (post to a queue, a pager, a chat webhook). An exception a hook raises
is logged and never changes the workflow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("durable_core.alerts")

__all__ = ["Alerts"]

WorkflowFailedHook = Callable[[str, str, BaseException], object]
DeadLetterHook = Callable[[str, str], object]


@dataclass(frozen=True)
class Alerts:
    on_workflow_failed: WorkflowFailedHook | None = None
    on_dead_letter: DeadLetterHook | None = None

    def __post_init__(self) -> None:
        for name in ("on_workflow_failed", "on_dead_letter"):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be callable, not {type(hook).__name__}")

    def workflow_failed(self, workflow_id: str, name: str, error: BaseException) -> None:
        if self.on_workflow_failed is not None:
            try:
                self.on_workflow_failed(workflow_id, name, error)
            except Exception:
                log.exception("on_workflow_failed hook raised for workflow %s", workflow_id)

    def dead_lettered(self, workflow_id: str, name: str) -> None:
        if self.on_dead_letter is not None:
            try:
                self.on_dead_letter(workflow_id, name)
            except Exception:
                log.exception("on_dead_letter hook raised for workflow %s", workflow_id)


NO_ALERTS = Alerts()
