"""Reading the side-effect log of tests.chaos.flows and checking it against the kills."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class Execution:
    """One execution of one step: which process ran it, from when to when (end None: the
    process died inside the step)."""

    workflow_id: str
    step_id: int
    pid: int
    start: float
    end: float | None


def read_executions(lines: list[str]) -> list[Execution]:
    """Pair each ``start`` line with the next ``end`` line of the same step and process."""
    open_: dict[tuple[str, int, int], float] = {}
    done: list[Execution] = []
    for line in lines:
        what, workflow_id, step, pid, t = line.split()
        key = (workflow_id, int(step), int(pid))
        if what == "start":
            if key in open_:  # the same process started it again: the first never ended
                done.append(Execution(*key, open_.pop(key), None))
            open_[key] = float(t)
        else:
            done.append(Execution(*key, open_.pop(key), float(t)))
    done.extend(Execution(*key, start, None) for key, start in open_.items())
    return done


def by_step(executions: list[Execution]) -> dict[tuple[str, int], list[Execution]]:
    grouped: dict[tuple[str, int], list[Execution]] = defaultdict(list)
    for e in executions:
        grouped[(e.workflow_id, e.step_id)].append(e)
    return grouped


def excess_runs(executions: list[Execution], died_at: dict[int, float]) -> list[str]:
    """Steps that ran more than once plus the crashes that hit them. A crash hit an execution
    when its process died after the execution started (inside the step, or between the
    step's end and its checkpoint)."""
    problems = []
    for (workflow_id, step_id), runs in by_step(executions).items():
        hits = sum(1 for e in runs if e.pid in died_at and died_at[e.pid] >= e.start)
        if len(runs) > 1 + hits:
            problems.append(f"{workflow_id} step {step_id}: {len(runs)} runs, {hits} crashes")
    return problems


def unfinished_without_crash(executions: list[Execution], died_at: dict[int, float]) -> list:
    """An execution with no end must belong to a process that was killed."""
    return [e for e in executions if e.end is None and e.pid not in died_at]


def concurrent_owners(executions: list[Execution], died_at: dict[int, float]) -> list[str]:
    """Workflows that two live processes ran at the same time. Each process's span on a
    workflow runs from its first step start to its last step end (or its death, when it died
    inside a step); spans of different processes must not overlap."""
    spans: dict[str, dict[int, list[float]]] = defaultdict(dict)
    for e in executions:
        end = e.end if e.end is not None else died_at.get(e.pid, float("inf"))
        span = spans[e.workflow_id].setdefault(e.pid, [e.start, end])
        span[0], span[1] = min(span[0], e.start), max(span[1], end)
    problems = []
    for workflow_id, per_pid in spans.items():
        latest_pid, latest_end = None, float("-inf")
        for pid, (start, end) in sorted(per_pid.items(), key=lambda item: item[1][0]):
            if start < latest_end:
                problems.append(
                    f"{workflow_id}: pid {latest_pid} ran until {latest_end}, pid {pid} from {start}"
                )
            if end > latest_end:
                latest_pid, latest_end = pid, end
    return problems
