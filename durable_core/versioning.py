"""Versioning inside a workflow: ``patched()`` and ``deprecate_patch()``.

A deploy that changes what a workflow does must not change what executions recorded under the
old code replay. ``patched("name")`` marks the place of the change: an execution that reaches
it under the new code records a marker step (``durable.patch:name``) and takes the new branch;
an execution whose history already holds another step at that place was recorded by the old
code, so it gets False and replays the old branch. The marker is the checkpointed choice: a
later replay of a new execution finds it and takes the new branch again.

Once no execution recorded before the patch is left (all finished, or older than you keep),
replace ``if patched("name"): new() else: old()`` with ``deprecate_patch("name"); new()``:
it consumes the marker where one was recorded and records nothing for new executions. A
release later, delete the ``deprecate_patch`` call.
"""

from __future__ import annotations

from . import context as ctxmod
from . import validation
from .execution import checkpoint

MARKER_PREFIX = "durable.patch:"


def _marker(name: str) -> str:
    return MARKER_PREFIX + validation.key(name, "patch name")


def patched(name: str) -> bool:
    """True for an execution that reaches this point under the code that has the patch (the
    choice is recorded); False when replaying an execution recorded before it existed."""
    ctx = ctxmod.require("patched()")
    marker = _marker(name)
    step_id = ctx.step_counter + 1
    row = ctx.recorded.get(step_id)
    if row is not None:
        if row.name != marker:
            return False  # the old code recorded something else here: replay it the old way
        ctx.next_step_id()
        return True
    if ctx.replay_only:
        # Replaying a history that ends before this point: the old code never got here.
        return False
    ctx.check_live()
    ctx.next_step_id()
    checkpoint(ctx, step_id, marker, None, None, None, ctx.engine.clock.now_ms())
    return True


def deprecate_patch(name: str) -> bool:
    """The cleanup release of a patch: executions that recorded the marker replay past it,
    new ones record nothing. Always True, so it can stand where ``patched(name)`` stood."""
    ctx = ctxmod.require("deprecate_patch()")
    marker = _marker(name)
    row = ctx.recorded.get(ctx.step_counter + 1)
    if row is not None and row.name == marker:
        ctx.next_step_id()
    return True
