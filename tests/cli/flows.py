"""Workflows the CLI tests run in-process (registered as ``tests.cli.flows.*``)."""

from __future__ import annotations

from collections import Counter

from durable_core import recv, step, workflow

CALLS: Counter[str] = Counter()
FAIL_ONCE: set[str] = set()


@step
def record(tag: str, value: int) -> int:
    CALLS[tag] += 1
    return value


@step
def flaky(tag: str) -> str:
    CALLS[tag + ":flaky"] += 1
    if tag in FAIL_ONCE:
        raise RuntimeError(f"flaky failure for {tag}")
    return "ok"


@workflow
def three_steps(tag: str, x: int) -> int:
    a = record(tag + ":1", x)
    b = record(tag + ":2", x * 10)
    c = record(tag + ":3", x * 100)
    return a + b + c


@workflow
def fails_until_fixed(tag: str) -> str:
    record(tag + ":before", 1)
    return flaky(tag)


@workflow
def wait_for_go(tag: str) -> str:
    record(tag + ":before", 1)
    message = recv("go", timeout=60)
    record(tag + ":after", 1)
    return message


@workflow
def scheduled_report(scheduled_at, started_at, label: str = "") -> str:
    return f"{label}@{scheduled_at.isoformat()}"


@step(retries=3, retry_delay=0.01, backoff=1.0)
def shaky(tag: str) -> str:
    CALLS[tag + ":shaky"] += 1
    if CALLS[tag + ":shaky"] <= 2:
        raise ConnectionError(f"attempt {CALLS[tag + ':shaky']} failed")
    return "ok"


@workflow
def retried(tag: str) -> str:
    record(tag + ":first", 1)
    return shaky(tag)
