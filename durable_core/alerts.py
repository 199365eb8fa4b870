"""Alert hooks: callables an application passes to its ``Engine`` to hear of failures.

``Engine(on_workflow_failed=fn, on_dead_letter=fn)``: ``on_workflow_failed(workflow_id, name,
error)`` runs after a workflow's ERROR outcome is recorded (the failure is also logged at ERROR
with its ID and name by ``durable_core.execution``); ``on_dead_letter(workflow_id, name)`` runs
after a workflow is dead-lettered (``MAX_RECOVERY_ATTEMPTS_EXCEEDED``, logged at ERROR by
``durable_core.recovery``). Hooks run in the thread that recorded the outcome, after the
commit; keep them quick (post to a queue, a pager, a chat webhook). An exception a hook raises
is logged and never changes the workflow.

Two more watch the fleet from the engine's maintenance loop (``recovery.FleetWatch``):
``on_queue_stuck(queue, oldest_workflow_id, waited_seconds, enqueued)`` once a queue's oldest
claimable workflow has waited longer than ``queue_stuck_after`` seconds (once per episode: again
only after the queue caught up), and ``on_executor_lost(executor_id, workflow_ids)`` once an
executor's lease runs out while this engine watches (``workflow_ids``: the PENDING workflows it
held, the first 100; the others adopt them). Both are also logged at ERROR with the IDs, the
executor one whether or not a hook is set. Every engine with the hook reports what it sees: set
it on one process, or de-duplicate by the IDs where the alert lands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("durable_core.alerts")

__all__ = ["Alerts"]

WorkflowFailedHook = Callable[[str, str, BaseException], object]
DeadLetterHook = Callable[[str, str], object]
QueueStuckHook = Callable[[str, "str | None", float, int], object]
ExecutorLostHook = Callable[[str, "list[str]"], object]


@dataclass(frozen=True)
class Alerts:
    on_workflow_failed: WorkflowFailedHook | None = None
    on_dead_letter: DeadLetterHook | None = None
    on_queue_stuck: QueueStuckHook | None = None
    queue_stuck_after: float | None = None
    on_executor_lost: ExecutorLostHook | None = None

    def __post_init__(self) -> None:
        for name in ("on_workflow_failed", "on_dead_letter", "on_queue_stuck", "on_executor_lost"):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be callable, not {type(hook).__name__}")
        after = self.queue_stuck_after
        if after is not None and (
            isinstance(after, bool) or not isinstance(after, int | float) or not after > 0
        ):
            raise ValueError(
                f"queue_stuck_after must be a positive number of seconds, not {after!r}"
            )
        if self.on_queue_stuck is not None and after is None:
            raise ValueError("on_queue_stuck needs queue_stuck_after (seconds a queue may wait)")

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

    def queue_stuck(
        self, queue: str, workflow_id: str | None, waited: float, enqueued: int
    ) -> None:
        if self.on_queue_stuck is not None:
            try:
                self.on_queue_stuck(queue, workflow_id, waited, enqueued)
            except Exception:
                log.exception("on_queue_stuck hook raised for queue %s", queue)

    def executor_lost(self, executor_id: str, workflow_ids: list[str]) -> None:
        if self.on_executor_lost is not None:
            try:
                self.on_executor_lost(executor_id, workflow_ids)
            except Exception:
                log.exception("on_executor_lost hook raised for executor %s", executor_id)


NO_ALERTS = Alerts()
