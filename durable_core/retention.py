"""Retention: how long finished workflows are kept, applied by the engine's maintenance loop.

``Engine(retention=Retention(older_than=timedelta(days=30)))`` deletes, every ``interval``
seconds, workflows in ``statuses`` (default: every terminal status) that finished more than
``older_than`` ago, with their steps, events, streams and messages, in batches of ``batch``
short transactions and at most ``max_batches`` of them per pass (a large backlog goes over
several passes, never holding up the loop's other work for long). Several policies (a list)
keep statuses for different times, e.g. SUCCESS for 7 days and ERROR for 90. The default is
no retention: nothing is deleted unless you ask (``durable gc`` or ``Engine.garbage_collect``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError
from .status import TERMINAL

__all__ = ["Retention", "apply_retention", "retention_policies"]


@dataclass(frozen=True)
class Retention:
    older_than: dt.timedelta
    statuses: tuple[str, ...] = TERMINAL
    interval: float = 3600.0
    batch: int = 1000
    max_batches: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.older_than, dt.timedelta) or self.older_than.total_seconds() < 0:
            raise ConfigurationError("older_than must be a non-negative datetime.timedelta")
        statuses = (self.statuses,) if isinstance(self.statuses, str) else tuple(self.statuses)
        unknown = [s for s in statuses if s not in TERMINAL]
        if unknown or not statuses:
            raise ConfigurationError(
                f"statuses must be terminal statuses ({', '.join(TERMINAL)}), not {unknown or statuses!r}"
            )
        object.__setattr__(self, "statuses", tuple(str(s) for s in statuses))
        if not isinstance(self.interval, int | float) or self.interval <= 0:
            raise ConfigurationError(f"interval must be a positive number, not {self.interval!r}")
        for name in ("batch", "max_batches"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"{name} must be a positive integer, not {value!r}")

    def apply(self, store: Any) -> int:
        """One bounded pass on ``store`` (an ``SQLStore``; untyped here so that this leaf
        module sits below the store in the layers): returns how many workflows it deleted."""
        cutoff = store.now_ms() - int(self.older_than.total_seconds() * 1000)
        deleted: int = store.garbage_collect(
            cutoff, self.batch, statuses=self.statuses, max_batches=self.max_batches
        )
        return deleted


def retention_policies(retention: Retention | Sequence[Retention] | None) -> tuple[Retention, ...]:
    """``Engine(retention=...)`` as a tuple of policies (empty: retention is off)."""
    if retention is None:
        return ()
    policies = (retention,) if isinstance(retention, Retention) else tuple(retention)
    for policy in policies:
        if not isinstance(policy, Retention):
            raise TypeError(f"retention must be Retention objects, not {type(policy).__name__}")
    return policies


def apply_retention(store: Any, policies: Sequence[Retention]) -> int:
    return sum(policy.apply(store) for policy in policies)
