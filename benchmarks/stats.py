"""Summary statistics and the metric record that workers hand back to the runner.

Medians, not means: the benchmark machine is small (2 cores) and shared, so single
outliers (a checkpoint flush, a GC pause, another process) would dominate a mean.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

Unit = Literal["us", "ms", "/s"]

_SECONDS_PER_UNIT: dict[str, float] = {"us": 1e-6, "ms": 1e-3}


def median(samples: Sequence[float]) -> float:
    if not samples:
        raise ValueError("no samples")
    return statistics.median(samples)


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: an observed value, never an interpolation between two.

    With 200 samples p99 is the 2nd-largest; with fewer than 100 it is the maximum.
    """
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass(slots=True)
class Metric:
    """One number in the results table.

    ``unit`` is ``us``/``ms`` for times (lower is better) or ``/s`` for rates (higher is
    better). :meth:`seconds_per_item` turns either into a time so ratios are comparable.
    """

    workload: str
    name: str
    value: float
    unit: Unit
    samples: int = 1

    @property
    def is_rate(self) -> bool:
        return self.unit == "/s"

    def seconds_per_item(self) -> float:
        if self.is_rate:
            return math.inf if self.value <= 0 else 1.0 / self.value
        return self.value * _SECONDS_PER_UNIT[self.unit]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Metric:
        return cls(**data)


def latency_metrics(
    workload: str, label: str, seconds: Sequence[float], unit: Unit
) -> list[Metric]:
    """Median and p99 of ``seconds`` expressed in ``unit``."""
    scale = 1.0 / _SECONDS_PER_UNIT[unit]
    prefix = f"{label} " if label else ""
    return [
        Metric(workload, f"{prefix}median", median(seconds) * scale, unit, len(seconds)),
        Metric(workload, f"{prefix}p99", percentile(seconds, 99) * scale, unit, len(seconds)),
    ]
