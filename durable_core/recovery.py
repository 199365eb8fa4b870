"""Recovery and the engine's housekeeping loop.

A workflow whose process died is recovered by a process launching with the same executor ID
(at launch) or, once the dead executor's heartbeat lease has expired, by any live engine.
Each claim is a compare-and-swap on the workflow's run token, so two engines can never both
take it, and each counts a recovery attempt (dead-lettering past ``max_recovery_attempts``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from . import metrics
from .handles import WorkflowHandle
from .registry import REGISTRY
from .runtime import Runtime

log = logging.getLogger("durable_core.recovery")


def recover_rows(
    engine: Runtime, rows: list[tuple[str, str | None, str]], kind: str = "recovery"
) -> list[WorkflowHandle[Any]]:
    """Claim and restart ``(workflow_id, run_token, name)`` rows this process can run;
    ``kind`` (recovery, adoption, sweep) labels the metric."""
    handles: list[WorkflowHandle[Any]] = []
    for workflow_id, old_token, name in rows:
        if engine.runs_here(workflow_id):
            continue
        defn = REGISTRY.get(name)
        if defn is None:
            log.warning(
                "cannot recover workflow %s: no workflow named %r is registered in this "
                "process; it stays PENDING for a process that knows it",
                workflow_id,
                name,
            )
            continue
        claimed = engine.store.claim_workflow(
            workflow_id,
            engine.executor_id,
            uuid.uuid4().hex,
            expected_token=old_token,
            count_recovery=True,
        )
        if claimed is None:
            continue
        if claimed.status != "PENDING":
            log.error(
                "workflow %s (%s) exceeded max_recovery_attempts; dead-lettered",
                workflow_id,
                name,
            )
            metrics.dead_lettered(name)
            engine.alerts.dead_lettered(workflow_id, name)
            continue
        metrics.recovered(kind)
        log.info(
            "recovering workflow %s (%s), attempt %d", workflow_id, name, claimed.recovery_attempts
        )
        engine.submit(defn, claimed, None)
        handles.append(WorkflowHandle(engine, workflow_id))
    return handles


def recover_executor(engine: Runtime, executor_id: str) -> list[WorkflowHandle[Any]]:
    rows = engine.store.list_workflows(
        status=["PENDING"], executor_id=executor_id, limit=None, newest_first=False
    )
    versions = (None, engine.application_version)
    return recover_rows(
        engine,
        [(r.workflow_id, r.run_token, r.name) for r in rows if r.application_version in versions],
    )


def adopt_orphans(engine: Runtime) -> list[WorkflowHandle[Any]]:
    """Recover PENDING workflows whose executor's lease expired."""
    rows = engine.store.orphaned_workflows(
        int(engine.lease_seconds * 1000), (engine.application_version,)
    )
    theirs = [(wid, token) for wid, token, executor in rows if executor != engine.executor_id]
    if not theirs:
        return []
    names = {
        r.workflow_id: r.name
        for r in engine.store.list_workflows(workflow_ids=[w for w, _ in theirs], limit=None)
    }
    return recover_rows(
        engine, [(wid, token, names.get(wid, "")) for wid, token in theirs], "adoption"
    )


class OwnPendingSweep:
    """Finds this executor's PENDING workflows that no execution in this process holds and
    runs them again: a claim that committed but whose reply was lost (and whose retry did not
    come back), an execution that ended in a failure of the engine's own bookkeeping.

    A workflow is taken only when two sweeps in a row saw it unheld under the same run token,
    so one that is between its claim and its start (or between two executions) is left alone;
    the claim itself is a compare-and-swap on that token."""

    def __init__(self, engine: Runtime) -> None:
        self.engine = engine
        self.unheld: dict[str, str | None] = {}

    def sweep(self) -> list[WorkflowHandle[Any]]:
        engine = self.engine
        rows = engine.store.pending_of_executor(engine.executor_id, (engine.application_version,))
        # Names no module here registers are left alone (recovery warned about them once).
        unheld = {
            r.workflow_id: r
            for r in rows
            if REGISTRY.get(r.name) is not None and not engine.runs_here(r.workflow_id)
        }
        stranded = [
            (wid, r.run_token, r.name)
            for wid, r in unheld.items()
            if wid in self.unheld and self.unheld[wid] == r.run_token
        ]
        self.unheld = {wid: r.run_token for wid, r in unheld.items()}
        if not stranded:
            return []
        for wid, _, _ in stranded:
            log.warning(
                "workflow %s is PENDING under this executor but no execution holds it; "
                "running it again",
                wid,
            )
        return recover_rows(engine, stranded, "sweep")


class FleetWatch:
    """The "queue stuck" and "executor lost" alerts (see ``durable_core.alerts``), watched from
    one engine's launch on. Each is reported once: a queue again only after it caught up, an
    executor again only after it came back and was lost anew. An executor whose lease had
    already run out before this engine launched is not reported (a deploy must not page for
    every crash in the table's history)."""

    def __init__(self, engine: Runtime) -> None:
        self.engine = engine
        self.since_ms = engine.clock.now_ms()
        self.stuck: set[str] = set()
        self.lost: set[tuple[str, int]] = set()

    def queues(self) -> None:
        engine, after = self.engine, self.engine.alerts.queue_stuck_after
        if after is None:
            return
        now = engine.store.now_ms()
        stuck_now = set()
        for queue, enqueued, _running, since in engine.store.queue_backlog(now):
            if since is None or now - since <= after * 1000:
                continue
            stuck_now.add(queue)
            if queue in self.stuck:
                continue
            waited = (now - since) / 1000
            oldest = engine.store.oldest_ready(queue)
            log.error(
                "queue %s is stuck: its oldest claimable workflow %s has waited %.0fs "
                "(queue_stuck_after=%ss); %d enqueued",
                queue,
                oldest,
                waited,
                after,
                enqueued,
            )
            engine.alerts.queue_stuck(queue, oldest, waited, enqueued)
        self.stuck = stuck_now

    def executors(self) -> None:
        engine = self.engine
        store = engine.store
        now = store.now_ms()
        lease_ms = int(engine.lease_seconds * 1000)
        for executor_id, _version, hostname, pid, _started, beat in store.executors():
            if executor_id == engine.executor_id or now - beat < lease_ms:
                continue
            if beat + lease_ms < self.since_ms or (executor_id, beat) in self.lost:
                continue
            self.lost.add((executor_id, beat))
            held = store.list_workflows(
                status=["PENDING"], executor_id=executor_id, limit=100, newest_first=False
            )
            ids = [r.workflow_id for r in held]
            log.error(
                "executor %s (host %s, pid %s) lost: no heartbeat for %.0fs (lease %ss); "
                "%d workflow(s) it held will be adopted: %s",
                executor_id,
                hostname,
                pid,
                (now - beat) / 1000,
                engine.lease_seconds,
                len(ids),
                ", ".join(ids) or "none",
            )
            engine.alerts.executor_lost(executor_id, ids)


def forget_dead_executors(engine: Runtime) -> int:
    """Delete the rows of executors dead longer than ``engine.forget_executors_after`` whose
    work was adopted: a crashed process leaves its row behind (only a clean shutdown deletes
    its own), and a fleet that autoscales would otherwise list every pod it ever ran."""
    after = engine.forget_executors_after
    if not after:
        return 0
    before = engine.store.now_ms() - int(max(after, engine.lease_seconds) * 1000)
    removed = engine.store.remove_dead_executors(before, engine.executor_id)
    if removed:
        log.info("forgot %d dead executor(s) silent for over %.0fs", removed, after)
    return removed


def heartbeat(engine: Runtime) -> None:
    """Renew the engine's lease now (for test tooling that moves time by hand; the engine's
    heartbeat thread renews it regularly)."""
    engine.renew_lease()


def maintenance_loop(engine: Runtime, stopping: threading.Event) -> None:
    """Adoption of orphaned work (then forgetting executors dead for long, whose work is
    adopted), workflow deadlines, the sweep of this executor's own PENDING rows, the
    parked-waiter safety poll and the retention policies, until
    ``stopping`` (this launch's stop flag) is set. A failing pass backs off and tries again.
    Heartbeats have a thread of their own (heartbeat.py): a slow pass here never delays them."""
    last_adopt = 0.0
    last_deadlines = 0.0
    last_poll = time.monotonic()
    last_sweep = time.monotonic()
    own = OwnPendingSweep(engine)
    last_retention = [0.0] * len(engine.retention)
    last_forget = 0.0
    # At most once a minute (sooner when rows are forgotten sooner than that: tests).
    forget_interval = min(60.0, max(engine.forget_executors_after, 0.5))
    backoff = 1.0
    while not stopping.wait(0.5):
        try:
            now = time.monotonic()
            if engine.adopt_interval and now - last_adopt >= engine.adopt_interval:
                last_adopt = now
                # Only with a lease of unbroken contact behind us are others' heartbeats
                # evidence: after an outage or a stall every live worker's heartbeat is old.
                if engine.may_judge_leases():
                    # Before adoption: the lost executor's workflows are still its own.
                    engine.fleet_watch.executors()
                    adopt_orphans(engine)
                    if now - last_forget >= forget_interval:
                        last_forget = now
                        forget_dead_executors(engine)  # after adoption: their work is taken
                engine.fleet_watch.queues()
            if engine.deadline_interval and now - last_deadlines >= engine.deadline_interval:
                last_deadlines = now
                engine.store.expire_deadlines()
            if engine.recover_on_launch and now - last_sweep >= engine.heartbeat_seconds:
                last_sweep = now
                own.sweep()
            # A body that goes on for a while after its last step, outside any step: its
            # deferred checkpoint is written within checkpoint_delay (+ this loop's 0.5 s).
            if engine.checkpoint_delay:
                engine.write_deferred_checkpoints(engine.checkpoint_delay)
            if now - last_poll >= engine.poll_interval:
                last_poll = now
                engine.poll_parked()
            for i, policy in enumerate(engine.retention):
                if now - last_retention[i] >= policy.interval:
                    last_retention[i] = now
                    deleted = policy.apply(engine.store)  # bounded: max_batches per pass
                    if deleted:
                        log.info("retention deleted %d finished workflows", deleted)
            backoff = 1.0
        except Exception as exc:
            log.warning(
                "maintenance pass failed (%s: %s); retrying in %.0fs",
                type(exc).__name__,
                exc,
                backoff,
            )
            stopping.wait(backoff)
            backoff = min(backoff * 2, 5)
