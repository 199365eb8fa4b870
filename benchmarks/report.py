"""Turning worker records into the comparison table (console + Markdown) and JSON.

Ratios are *time* ratios so that below 1 always means "durable is faster", whether the
metric is a latency (µs, ms) or a rate (/s, converted to seconds per workflow first). The
floor ratio divides durable's time per item by the median single-row INSERT+COMMIT on the
same backend: "how many floor round trips does this cost".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from benchmarks.floor import FLOOR_METRIC
from benchmarks.stats import Metric

_UNIT_LABEL = {"us": "µs", "ms": "ms", "/s": "/s"}


@dataclass(slots=True)
class Row:
    workload: str
    metric: str
    backend: str
    durable: Metric | str | None
    dbos: Metric | str | None
    floor: Metric | None

    def cells(self) -> list[str]:
        return [
            f"{self.workload}: {self.metric}",
            self.backend,
            _value(self.durable),
            _value(self.dbos),
            _ratio(self.durable, self.dbos),
            _floor_ratio(self.durable, self.floor),
            _floor_ratio(self.dbos, self.floor),
        ]


HEADERS = ["workload", "backend", "durable", "dbos", "durable/dbos", "durable/floor", "dbos/floor"]


def _format_number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _value(cell: Metric | str | None) -> str:
    if cell is None:
        return "-"
    if isinstance(cell, str):
        return cell
    return f"{_format_number(cell.value)} {_UNIT_LABEL[cell.unit]}"


def _ratio(ours: Metric | str | None, theirs: Metric | str | None) -> str:
    if not isinstance(ours, Metric) or not isinstance(theirs, Metric):
        return "-"
    denominator = theirs.seconds_per_item()
    if denominator == 0:
        return "-"
    ratio = ours.seconds_per_item() / denominator
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x"


def _floor_ratio(cell: Metric | str | None, floor: Metric | None) -> str:
    if not isinstance(cell, Metric) or floor is None:
        return "-"
    return f"{cell.seconds_per_item() / floor.seconds_per_item():,.1f}x"


def _short_error(record: dict[str, Any]) -> str:
    error = str(record.get("error") or "failed")
    first_line = error.splitlines()[0] if error else "failed"
    return "ERROR: " + (first_line[:32] + "…" if len(first_line) > 32 else first_line)


def build_rows(records: list[dict[str, Any]]) -> list[Row]:
    """One row per (backend, workload, metric), in the order the metrics were measured."""
    floors: dict[str, Metric] = {}
    cells: dict[tuple[str, str, str], dict[str, Metric | str]] = {}
    order: list[tuple[str, str, str]] = []
    failures: dict[tuple[str, str], dict[str, str]] = {}

    for record in records:
        backend, system, workload = record["backend"], record["system"], record["workload"]
        metrics = [Metric.from_json(m) for m in record.get("metrics", [])]
        if system == "floor":
            for metric in metrics:
                if metric.name == FLOOR_METRIC:
                    floors[backend] = metric
        if record.get("error") and not metrics:
            failures.setdefault((backend, workload), {})[system] = _short_error(record)
            continue
        for metric in metrics:
            key = (backend, metric.workload, metric.name)
            if key not in cells:
                cells[key] = {}
                order.append(key)
            # The floor is one measurement per backend, shown in both systems' columns.
            for column in ("durable", "dbos") if system == "floor" else (system,):
                cells[key][column] = metric

    rows: list[Row] = []
    for backend, workload, name in order:
        found = cells[(backend, workload, name)]
        failed = failures.get((backend, workload), {})
        rows.append(
            Row(
                workload,
                name,
                backend,
                found.get("durable") or failed.get("durable"),
                found.get("dbos") or failed.get("dbos"),
                floors.get(backend),
            )
        )
    # Workloads where every system failed still deserve a visible row.
    covered = {(r.backend, r.workload) for r in rows}
    for (backend, workload), failed in failures.items():
        if (backend, workload) not in covered:
            rows.append(
                Row(workload, "(failed)", backend, failed.get("durable"), failed.get("dbos"), None)
            )
    return rows


def render_markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def print_table(rows: list[Row], title: str) -> None:
    """Rich table when rich is installed (it is a dependency of the library), else plain."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print(render_markdown(rows))
        return
    table = Table(title=title)
    for i, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*row.cells())
    Console(width=160).print(table)
