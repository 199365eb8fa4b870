"""Health checks for probes: database reachable, schema current, an executor's heartbeat fresh.

``check(store)`` runs each check once, without the store's retries through an outage (a probe
must answer within its own timeout, not wait for the database to come back), and returns a
``HealthReport``. ``durable health`` and the readiness endpoints of the integrations are this
function; liveness endpoints deliberately do not touch the database, so that an outage of the
database does not make the orchestrator restart every web process at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import SQLStore

__all__ = ["Check", "HealthReport", "check"]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class HealthReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "fail",
            "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in self.checks},
        }


def _failure(exc: BaseException) -> str:
    from .store import redact

    return redact(f"{type(exc).__name__}: {exc}")


def check(
    store: SQLStore, *, executor_id: str | None = None, max_heartbeat_age: float = 30.0
) -> HealthReport:
    """Database reachable (``SELECT 1``), schema at this release's version, and, with
    ``executor_id``, that executor's heartbeat younger than ``max_heartbeat_age`` seconds (the
    default lease). A failed check stops the later ones (they would fail the same way)."""
    from .store.schema import CURRENT_VERSION

    if max_heartbeat_age <= 0:
        raise ValueError(f"max_heartbeat_age must be positive, not {max_heartbeat_age!r}")
    checks: list[Check] = []
    with store.single_attempt():
        began = time.perf_counter()
        try:
            store.ping()
        except Exception as exc:
            return HealthReport([Check("database", False, _failure(exc))])
        took = (time.perf_counter() - began) * 1000
        checks.append(Check("database", True, f"reachable, round trip {took:.1f} ms"))
        try:
            store.check_schema()
        except Exception as exc:
            checks.append(Check("schema", False, _failure(exc)))
            return HealthReport(checks)
        checks.append(Check("schema", True, f"version {CURRENT_VERSION}"))
        if executor_id is not None:
            try:
                holder = store.executor_holder(executor_id)
            except Exception as exc:
                checks.append(Check("executor", False, _failure(exc)))
                return HealthReport(checks)
            if holder is None:
                checks.append(Check("executor", False, f"{executor_id!r} is not registered"))
            else:
                age = max(store.now_ms() - int(holder[2]), 0) / 1000
                fresh = age <= max_heartbeat_age
                checks.append(
                    Check(
                        "executor",
                        fresh,
                        f"{executor_id!r} heartbeat {age:.1f}s ago (limit {max_heartbeat_age:g}s)",
                    )
                )
    return HealthReport(checks)
