"""The fleet as data: queues paused and limited at run time, and the executors serving them.

A queue's stored settings (``durable_queue_settings``) override its ``Queue(...)`` declaration
until reset: pause stops claims (running work goes on, enqueues are still accepted), and
``concurrency``, ``worker_concurrency`` and ``rate_limit`` can be changed or lifted. Every claim
reads them in its own transaction (``SQLStore._with_settings``), so a change binds each claim
that begins after it commits, on every worker. Shared by ``Engine`` and ``Client``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from . import validation
from .errors import ConfigurationError
from .registry import REGISTRY
from .store import QueueSettings, SQLStore

#: ``set_queue_limits`` leaves a limit passed as this unchanged (``None`` lifts the limit).
UNCHANGED: Any = type("Unchanged", (), {"__repr__": lambda self: "UNCHANGED"})()

INTERNAL_QUEUE = "_durable_internal"


def _when(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueLimits:
    """A queue's flow-control limits (``None``: no limit)."""

    concurrency: int | None = None
    worker_concurrency: int | None = None
    rate_limit: tuple[int, float] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueInfo:
    """A queue as the fleet sees it now.

    ``concurrency``, ``worker_concurrency`` and ``rate_limit`` are the limits in force: a
    stored override where ``overridden`` names it, else the declaration. ``declared`` is the
    ``Queue(...)`` of this process if it declares the queue, else the one a worker published
    when it launched (``declared_version`` says which application version), ``None`` when
    neither is known (then un-overridden limits read ``None`` without meaning "no limit").
    """

    name: str
    paused: bool
    enqueued: int
    running: int
    concurrency: int | None
    worker_concurrency: int | None
    rate_limit: tuple[int, float] | None
    overridden: tuple[str, ...]
    declared: QueueLimits | None
    declared_version: str | None
    updated_at: dt.datetime | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the CLI's ``--json`` and the FastAPI router)."""
        out = dataclasses.asdict(self)
        out["overridden"] = list(self.overridden)
        out["rate_limit"] = list(self.rate_limit) if self.rate_limit else None
        if self.declared is not None and self.declared.rate_limit:
            out["declared"]["rate_limit"] = list(self.declared.rate_limit)
        out["updated_at"] = self.updated_at.isoformat() if self.updated_at else None
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutorInfo:
    """One registered executor (a worker or web process) and what it runs now.

    ``live``: its heartbeat is younger than the lease (by the database's clock); a dead
    executor's row stays until its ID is taken again, and its PENDING workflows are adopted
    by a live worker once the lease has passed. ``workflow_ids``: the oldest of the
    workflows it holds PENDING (at most ``list_executors(ids=)``)."""

    executor_id: str
    application_version: str | None
    hostname: str | None
    pid: int | None
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    heartbeat_age: float
    live: bool
    running: int
    running_by_name: dict[str, int]
    workflow_ids: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["started_at"] = self.started_at.isoformat()
        out["heartbeat_at"] = self.heartbeat_at.isoformat()
        out["workflow_ids"] = list(self.workflow_ids)
        return out


def _declared(name: str, stored: QueueSettings | None) -> tuple[QueueLimits | None, str | None]:
    queue = REGISTRY.queues.get(name)
    if queue is not None:
        return (
            QueueLimits(
                concurrency=queue.concurrency,
                worker_concurrency=queue.worker_concurrency,
                rate_limit=queue.rate_limit,
            ),
            None,
        )
    if stored is None or stored.declared_at is None:
        return None, None
    rate = None
    if stored.declared_rate_limit_count is not None:
        rate = (
            int(stored.declared_rate_limit_count),
            float(stored.declared_rate_limit_period or 1.0),
        )
    return (
        QueueLimits(
            concurrency=stored.declared_concurrency,
            worker_concurrency=stored.declared_worker_concurrency,
            rate_limit=rate,
        ),
        stored.declared_version,
    )


def _info(name: str, stored: QueueSettings | None, counts: dict[str, int]) -> QueueInfo:
    declared, version = _declared(name, stored)
    base = declared or QueueLimits()
    limits = (base.concurrency, base.worker_concurrency, base.rate_limit)
    if stored is not None:
        limits = stored.effective(*limits)
    return QueueInfo(
        name=name,
        paused=bool(stored and stored.paused),
        enqueued=counts.get("ENQUEUED", 0),
        running=counts.get("PENDING", 0),
        concurrency=limits[0],
        worker_concurrency=limits[1],
        rate_limit=limits[2],
        overridden=stored.overridden if stored else (),
        declared=declared,
        declared_version=version,
        updated_at=_when(stored.updated_at) if stored else None,
    )


def list_queues(store: SQLStore) -> list[QueueInfo]:
    """Every queue that is declared here, has stored settings, or holds in-flight work."""
    counts: dict[str, dict[str, int]] = {}
    for queue_name, status, count in store.queue_counts():
        counts.setdefault(queue_name, {})[status] = int(count)
    stored = {s.name: s for s in store.queue_settings()}
    names = (set(counts) | set(stored) | set(REGISTRY.queues)) - {INTERNAL_QUEUE}
    return [_info(n, stored.get(n), counts.get(n, {})) for n in sorted(names)]


def get_queue(store: SQLStore, name: str) -> QueueInfo:
    name = validation.name(name, "queue name")
    stored = store.queue_settings(name)
    counts: dict[str, int] = {}
    for queue_name, status, count in store.queue_counts():
        if queue_name == name:
            counts[status] = int(count)
    return _info(name, stored[0] if stored else None, counts)


def pause_queue(store: SQLStore, name: str) -> QueueInfo:
    name = validation.name(name, "queue name")
    store.change_queue_settings(name, {"paused": 1})
    return get_queue(store, name)


def resume_queue(store: SQLStore, name: str) -> QueueInfo:
    name = validation.name(name, "queue name")
    store.change_queue_settings(name, {"paused": 0})
    return get_queue(store, name)


def set_queue_limits(
    store: SQLStore,
    name: str,
    concurrency: Any = UNCHANGED,
    worker_concurrency: Any = UNCHANGED,
    rate_limit: Any = UNCHANGED,
) -> QueueInfo:
    """Store overrides: each given limit replaces the declaration (``None`` lifts it)."""
    name = validation.name(name, "queue name")
    changes: dict[str, Any] = {}
    if concurrency is not UNCHANGED:
        changes["concurrency"] = validation.queue_limit(concurrency, "concurrency") or 0
    if worker_concurrency is not UNCHANGED:
        changes["worker_concurrency"] = (
            validation.queue_limit(worker_concurrency, "worker_concurrency") or 0
        )
    if rate_limit is not UNCHANGED:
        rate = validation.rate_limit(rate_limit, "rate_limit")
        changes["rate_limit_count"] = rate[0] if rate else 0
        changes["rate_limit_period"] = rate[1] if rate else None
    if not changes:
        raise ConfigurationError(
            "set_queue_limits needs at least one of concurrency, worker_concurrency, rate_limit"
        )
    store.change_queue_settings(name, changes)
    return get_queue(store, name)


def reset_queue(store: SQLStore, name: str) -> QueueInfo:
    """Drop the limit overrides: the declaration is in force again. A pause stays
    (``resume_queue`` undoes a pause)."""
    name = validation.name(name, "queue name")
    store.change_queue_settings(
        name,
        {
            "concurrency": None,
            "worker_concurrency": None,
            "rate_limit_count": None,
            "rate_limit_period": None,
        },
    )
    return get_queue(store, name)


def list_executors(store: SQLStore, lease_seconds: float, ids: int = 20) -> list[ExecutorInfo]:
    """Every registered executor, freshest heartbeat first, with what it runs."""
    ids = validation.integer(ids, "ids", 0, 1000)
    now = store.now_ms()
    by_name = store.running_by_executor()
    out = []
    for executor_id, version, hostname, pid, started, heartbeat in store.executors():
        names = by_name.get(executor_id, {})
        age = max(now - int(heartbeat), 0) / 1000
        out.append(
            ExecutorInfo(
                executor_id=executor_id,
                application_version=version,
                hostname=hostname,
                pid=pid,
                started_at=_when(int(started)) or dt.datetime.min,
                heartbeat_at=_when(int(heartbeat)) or dt.datetime.min,
                heartbeat_age=age,
                live=age < lease_seconds,
                running=sum(names.values()),
                running_by_name=dict(sorted(names.items())),
                workflow_ids=tuple(store.running_ids(executor_id, ids)) if names and ids else (),
            )
        )
    return out
