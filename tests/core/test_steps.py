"""Steps: the retry policy (retry_on, should_retry, RetryAfter, jitter, step_attempt()),
per-attempt timeouts, and cancellation reaching a running step. Both backends."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from durable_core import cancelled, step, step_attempt, workflow
from durable_core.errors import (
    NotInWorkflow,
    RetryAfter,
    StepRetriesExceeded,
    StepTimeout,
)
from durable_core.retries import RetryPolicy

SEEN: dict[str, list] = {}
EVENTS: dict[str, threading.Event] = {}


def seen(key: str) -> list:
    return SEEN.setdefault(key, [])


def event(key: str) -> threading.Event:
    return EVENTS.setdefault(key, threading.Event())


class Transient(Exception):
    pass


class Permanent(Exception):
    pass


# -- retry_on ----------------------------------------------------------------------------------


@step(retries=3, retry_delay=0.01, retry_on=(Transient,))
def picky(key: str, errors: list[str]) -> int:
    attempt = step_attempt()
    seen(key).append(attempt)
    if attempt <= len(errors):
        raise {"t": Transient, "p": Permanent}[errors[attempt - 1]](f"attempt {attempt}")
    return attempt


@workflow
def run_picky(key: str, errors: list[str]) -> int:
    return picky(key, errors)


def test_retry_on_retries_listed_errors(engine):
    key = uuid.uuid4().hex
    assert engine.start_workflow(run_picky, key, ["t", "t"]).result(timeout=30) == 3
    assert seen(key) == [1, 2, 3]


def test_retry_on_fails_other_errors_at_once(engine):
    key = uuid.uuid4().hex
    handle = engine.start_workflow(run_picky, key, ["t", "p", "t"])
    with pytest.raises(Permanent, match="attempt 2"):
        handle.result(timeout=30)
    assert seen(key) == [1, 2]


def test_retries_exceeded_after_retryable_errors(engine):
    key = uuid.uuid4().hex
    handle = engine.start_workflow(run_picky, key, ["t"] * 4)
    with pytest.raises(StepRetriesExceeded) as info:
        handle.result(timeout=30)
    assert info.value.attempts == 4
    assert isinstance(info.value.last_error, Transient)
    assert seen(key) == [1, 2, 3, 4]


# -- should_retry ------------------------------------------------------------------------------

CALLS: list[tuple[str, int]] = []


def only_twice(exc: BaseException, attempt: int) -> bool:
    CALLS.append((type(exc).__name__, attempt))
    return attempt < 2


@step(retries=5, retry_delay=0.01, should_retry=only_twice)
def judged(key: str) -> None:
    seen(key).append(step_attempt())
    raise Transient(f"attempt {step_attempt()}")


@workflow
def run_judged(key: str) -> None:
    judged(key)


def test_should_retry_decides_with_error_and_attempt(engine):
    key = uuid.uuid4().hex
    CALLS.clear()
    with pytest.raises(Transient, match="attempt 2"):
        engine.start_workflow(run_judged, key).result(timeout=30)
    assert seen(key) == [1, 2]
    assert CALLS == [("Transient", 1), ("Transient", 2)]


# -- RetryAfter --------------------------------------------------------------------------------


@step(retries=2, retry_delay=600)
def rate_limited(key: str, wait: float) -> float:
    seen(key).append(time.monotonic())
    if step_attempt() == 1:
        raise RetryAfter(wait, "429 Too Many Requests")
    return seen(key)[-1] - seen(key)[0]


@workflow
def run_rate_limited(key: str, wait: float) -> float:
    return rate_limited(key, wait)


def test_retry_after_sets_the_delay_of_that_retry(engine):
    # retry_delay is 600 s: the retry is 0.3 s later only because the body said so.
    key = uuid.uuid4().hex
    gap = engine.start_workflow(run_rate_limited, key, 0.3).result(timeout=30)
    assert 0.3 <= gap < 20


@step(retries=1, retry_delay=0.01, retry_on=(Permanent,))
def always_limited() -> None:
    raise RetryAfter(0.01)


@workflow
def run_always_limited() -> None:
    always_limited()


def test_retry_after_is_retried_whatever_retry_on_says_and_rebuilds(engine):
    with pytest.raises(StepRetriesExceeded) as info:
        engine.start_workflow(run_always_limited).result(timeout=30)
    assert info.value.attempts == 2
    assert isinstance(info.value.last_error, RetryAfter)
    assert info.value.last_error.seconds == 0.01


def test_retry_after_validates_seconds():
    with pytest.raises(ValueError, match="seconds"):
        RetryAfter(-1)
    with pytest.raises(ValueError, match="seconds"):
        RetryAfter("soon")  # type: ignore[arg-type]


# -- jitter and the attempt number ---------------------------------------------------------------


def test_jitter_is_bounded_and_deterministic():
    policy = RetryPolicy(retries=5, retry_delay=1.0, backoff=2.0, max_delay=10.0, jitter=0.5)
    boom = Transient()
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0)]:
        d = policy.delay(boom, attempt, "wf:1")
        assert base * 0.5 <= d <= base
        assert d == policy.delay(boom, attempt, "wf:1")  # same workflow, same wait
    spread = {policy.delay(boom, 1, f"wf-{i}:1") for i in range(50)}
    assert len(spread) > 40  # workflows failing together retry apart
    assert RetryPolicy(retry_delay=1.0, jitter=0).delay(boom, 1, "x") == 1.0
    assert policy.delay(RetryAfter(42), 1, "x") == 42


def test_step_options_are_validated():
    from durable_core.errors import ConfigurationError

    for bad in (
        {"jitter": 2},
        {"timeout": 0},
        {"timeout": "1"},
        {"retry_on": (ValueError, "x")},
        {"should_retry": 3},
    ):
        with pytest.raises(ConfigurationError):
            step(**bad)(lambda: None)  # type: ignore[call-overload]


def test_step_attempt_outside_a_step_body():
    with pytest.raises(NotInWorkflow, match="step_attempt"):
        step_attempt()
    assert cancelled() is False


@step(retries=2, retry_delay=0.01)
async def async_flaky(key: str) -> int:
    seen(key).append(step_attempt())
    if step_attempt() < 3:
        raise Transient("again")
    return step_attempt()


@workflow
async def run_async_flaky(key: str) -> int:
    return await async_flaky(key)


def test_async_step_attempt_and_retries(engine):
    key = uuid.uuid4().hex
    assert engine.start_workflow(run_async_flaky, key).result(timeout=30) == 3
    assert seen(key) == [1, 2, 3]


# -- timeouts ----------------------------------------------------------------------------------


@step(timeout=0.3, retries=1, retry_delay=0.01)
def slow_then_fast(key: str) -> int:
    seen(key).append(step_attempt())
    if step_attempt() == 1:
        event(key).wait(30)  # stuck until the test releases it
        seen(key).append("first attempt ran on")
    return step_attempt()


@workflow
def run_slow_then_fast(key: str) -> int:
    return slow_then_fast(key)


def test_sync_timeout_fails_the_attempt_and_retries(engine):
    key = uuid.uuid4().hex
    started = time.monotonic()
    handle = engine.start_workflow(run_slow_then_fast, key)
    assert handle.result(timeout=30) == 2
    assert time.monotonic() - started < 20
    assert seen(key) == [1, 2]
    # The timed-out body's thread was not killed: it runs on, and its result is dropped.
    event(key).set()
    deadline = time.monotonic() + 10
    while "first attempt ran on" not in seen(key) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen(key)[-1] == "first attempt ran on"
    assert [s.result for s in engine.list_steps(handle.workflow_id)] == [2]


@step(timeout=0.2)
def stuck(key: str) -> None:
    event(key).wait(30)


@workflow
def run_stuck(key: str) -> None:
    stuck(key)


def test_sync_timeout_without_retries_raises_step_timeout(engine):
    key = uuid.uuid4().hex
    handle = engine.start_workflow(run_stuck, key)
    with pytest.raises(StepTimeout, match="stuck.*0.2s"):
        handle.result(timeout=30)
    event(key).set()
    [info] = engine.list_steps(handle.workflow_id)
    assert "StepTimeout" in str(info.error)


@step(timeout=0.2, retries=1, retry_delay=0.01)
async def async_stuck(key: str) -> None:
    seen(key).append(step_attempt())
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        seen(key).append("cancelled")
        raise


@workflow
async def run_async_stuck(key: str) -> None:
    await async_stuck(key)


def test_async_timeout_cancels_the_body_and_counts_for_retries(engine):
    key = uuid.uuid4().hex
    started = time.monotonic()
    with pytest.raises(StepRetriesExceeded) as info:
        engine.start_workflow(run_async_stuck, key).result(timeout=30)
    assert time.monotonic() - started < 20
    assert isinstance(info.value.last_error, StepTimeout)
    assert seen(key) == [1, "cancelled", 2, "cancelled"]


# -- cancellation reaching a running step ---------------------------------------------------------


@step
async def async_long(key: str) -> str:
    event(key).set()
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        seen(key).append("cancelled")
        raise
    return "finished"


@workflow
async def run_async_long(key: str) -> str:
    return await async_long(key)


def wait_status(handle, status: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while handle.status().status != status:
        assert time.monotonic() < deadline, handle.status().status
        time.sleep(0.02)


def test_cancel_interrupts_a_running_async_step(engine):
    key = uuid.uuid4().hex
    started = time.monotonic()
    handle = engine.start_workflow(run_async_long, key)
    assert event(key).wait(20)
    engine.cancel_workflow(handle.workflow_id)
    wait_status(handle, "CANCELLED")
    deadline = time.monotonic() + 10
    while not seen(key) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen(key) == ["cancelled"]
    assert time.monotonic() - started < 30  # not the step's 60 s
    assert engine.list_steps(handle.workflow_id) == []  # the interrupted step is not recorded


@step
def cooperative(key: str) -> str:
    event(key).set()
    deadline = time.monotonic() + 60
    while not cancelled() and time.monotonic() < deadline:
        time.sleep(0.01)
    seen(key).append(cancelled())
    return "stopped early"


@workflow
def run_cooperative(key: str) -> str:
    return cooperative(key)


def test_sync_step_sees_cancellation_cooperatively(engine):
    key = uuid.uuid4().hex
    handle = engine.start_workflow(run_cooperative, key)
    assert event(key).wait(20)
    engine.cancel_workflow(handle.workflow_id)
    wait_status(handle, "CANCELLED")
    deadline = time.monotonic() + 10
    while not seen(key) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen(key) == [True]


# -- jitter under a test clock ---------------------------------------------------------------------


@step(retries=2, retry_delay=3600, backoff=2, max_delay=86400, jitter=0.5)
def down_for_hours(key: str) -> str:
    if step_attempt() < 3:
        raise Transient("down")
    return "up"


@workflow
def run_down_for_hours(key: str) -> str:
    return down_for_hours(key)


def test_jittered_retries_are_exact_under_the_test_clock(backend):
    from durable_core.testing import TestClock, TestEngine

    from ..conftest import PG_URL

    start = 1_800_000_000.0
    url = None if backend == "sqlite" else PG_URL
    with TestEngine(url, schema_prefix="steps_", clock=TestClock(start)) as tengine:
        handle = tengine.start_workflow(run_down_for_hours, "k", workflow_id="jitter-1")
        tengine.run_until_idle()
        assert handle.result(timeout=5) == "up"
        policy = down_for_hours.__durable_step__.policy
        waited = sum(policy.delay(Transient(), n, "jitter-1:1") for n in (1, 2))
        assert 0.5 * 3 * 3600 <= waited < 3 * 3600  # jittered, within its bound
        assert tengine.clock.time() == pytest.approx(start + waited, abs=1e-3)


@step
async def async_stubborn(key: str) -> str:
    event(key).set()
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        return "ignored the cancel"
    return "finished"


@step
def after_stubborn(key: str) -> str:
    seen(key).append("next step ran")
    return "must not run"


@workflow
async def run_async_stubborn(key: str) -> str:
    first = await async_stubborn(key)
    after_stubborn(key)
    return first


def test_a_step_that_ignores_cancellation_runs_on_but_is_not_recorded(engine):
    # The cancel has already ended the workflow (CANCELLED) when such a step returns: its
    # checkpoint is refused, so its outcome is dropped and nothing after it runs.
    for wf in (run_async_stubborn, run_cooperative):
        key = uuid.uuid4().hex
        handle = engine.start_workflow(wf, key)
        assert event(key).wait(20)
        engine.cancel_workflow(handle.workflow_id)
        wait_status(handle, "CANCELLED")
        time.sleep(0.5)  # a generous window for a wrongly recorded step or a next step to show
        assert engine.list_steps(handle.workflow_id) == []
        assert "next step ran" not in seen(key)
        assert handle.status().status == "CANCELLED"


# -- a workflow's timeout reaching a running step ---------------------------------------------


@workflow
async def run_async_long_then_more(key: str) -> str:
    await async_long(key)
    seen(key).append("next step ran")
    return "done"


def test_workflow_timeout_interrupts_a_running_async_step(engine):
    # The deadline passes while the step awaits: the step is cancelled at its await, the
    # workflow ends CANCELLED with a TimeoutError, and nothing after the step runs.
    key = uuid.uuid4().hex
    started = time.monotonic()
    handle = engine.start_workflow(run_async_long_then_more, key, timeout=0.5)
    assert event(key).wait(20)
    wait_status(handle, "CANCELLED")
    deadline = time.monotonic() + 10
    while not seen(key) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen(key) == ["cancelled"]
    assert time.monotonic() - started < 30  # not the step's 60 s
    assert engine.list_steps(handle.workflow_id) == []
    with pytest.raises(Exception, match="timed out"):
        handle.result(timeout=10)


def test_workflow_timeout_is_seen_by_a_sync_step(engine):
    key = uuid.uuid4().hex
    handle = engine.start_workflow(run_cooperative, key, timeout=0.5)
    assert event(key).wait(20)
    wait_status(handle, "CANCELLED")
    deadline = time.monotonic() + 10
    while not seen(key) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen(key) == [True]
    assert engine.list_steps(handle.workflow_id) == []
