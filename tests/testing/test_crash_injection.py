"""Crash injection: an execution dies at a step boundary and recover() resumes it."""

from __future__ import annotations

import pytest

from durable_core import Queue, sql_session, step, transaction, workflow
from durable_core.testing import SimulatedCrash

CALLS: dict[str, int] = {}


def count(name: str) -> None:
    CALLS[name] = CALLS.get(name, 0) + 1


@pytest.fixture(autouse=True)
def reset_calls():
    CALLS.clear()


@step
def reserve(order: str) -> str:
    count("reserve")
    return f"r-{order}"


@transaction
def charge(order: str) -> str:
    count("charge")
    from sqlalchemy import text

    session = sql_session()
    session.execute(text("CREATE TABLE IF NOT EXISTS tk_charges (order_id TEXT)"))
    session.execute(text("INSERT INTO tk_charges (order_id) VALUES (:o)"), {"o": order})
    return f"c-{order}"


@step
def ship(order: str) -> str:
    count("ship")
    return f"s-{order}"


@workflow
def order_flow(order: str) -> list[str]:
    return [reserve(order), charge(order), ship(order)]


@step
async def async_fetch(order: str) -> str:
    count("async_fetch")
    return f"f-{order}"


@workflow
async def async_flow(order: str) -> str:
    first = await async_fetch(order)
    return first + "!"


def charges(engine, order: str) -> int:
    from sqlalchemy import text

    with engine.transactions.engine.connect() as conn:
        return conn.execute(
            text("SELECT COUNT(*) FROM tk_charges WHERE order_id = :o"), {"o": order}
        ).scalar()


STEPS = ["reserve", "charge", "ship"]


@pytest.mark.parametrize("where", ["before", "during", "after"])
@pytest.mark.parametrize("name", STEPS)
def test_crash_at_every_boundary_then_recover(tengine, name, where):
    crash = getattr(tengine, f"crash_{where}")(name)
    handle = tengine.start_workflow(order_flow, "o1", workflow_id=f"o1-{name}-{where}")
    hit = crash.wait()
    assert hit.step.endswith(name) and hit.workflow_id == handle.workflow_id
    assert handle.status().status == "PENDING"  # as a killed process leaves it
    recovered = tengine.recover()
    assert [h.workflow_id for h in recovered] == [handle.workflow_id]
    assert handle.result(timeout=10) == ["r-o1", "c-o1", "s-o1"]
    assert charges(tengine, "o1") == 1  # the @transaction's effect: exactly once
    # A plain step that crashed mid-body (after its effects, before its checkpoint) runs again.
    expected = {s: 1 for s in STEPS}
    if where == "during":
        expected[name] = 2
    assert CALLS == expected
    assert handle.status().recovery_attempts == 1


def test_crash_of_a_direct_call_reaches_the_caller(tengine):
    tengine.crash_after(2)  # by step index
    with pytest.raises(SimulatedCrash) as info:
        order_flow("o2")
    assert info.value.step_id == 2
    [handle] = tengine.recover()
    assert handle.result(timeout=10) == ["r-o2", "c-o2", "s-o2"]
    assert CALLS == {"reserve": 1, "charge": 1, "ship": 1}


def test_user_code_cannot_swallow_a_crash(tengine):
    @workflow(name="tk.swallow")
    def swallow() -> str:
        try:
            reserve("o3")
        except Exception:
            return "swallowed"
        return "done"

    tengine.crash_before(reserve)
    handle = tengine.start_workflow(swallow)
    tengine.recover()
    assert handle.result(timeout=10) == "done"


def test_crash_selects_a_workflow(tengine):
    crash = tengine.crash_before("reserve", workflow=order_flow)
    other = tengine.start_workflow(async_flow, "x")
    assert other.result(timeout=10) == "f-x!"
    assert not crash.fired
    handle = tengine.start_workflow(order_flow, "o4")
    tengine.recover()
    assert handle.result(timeout=10) == ["r-o4", "c-o4", "s-o4"]


def test_async_workflow_crash_and_recover(tengine):
    tengine.crash_during("async_fetch")
    handle = tengine.start_workflow(async_flow, "a1")
    tengine.recover()
    assert handle.result(timeout=10) == "f-a1!"
    assert CALLS == {"async_fetch": 2}


def test_recover_fails_when_the_crash_never_happens(tengine):
    tengine.crash_before("no_such_step")
    with pytest.raises(AssertionError, match="no_such_step"):
        tengine.recover(timeout=0.2)


def test_enqueued_work_crashes_and_recovers(tengine):
    orders = Queue("tk-orders")
    tengine.crash_after("charge")
    handle = orders.enqueue(order_flow, "o5")
    tengine.recover()
    assert handle.result(timeout=10) == ["r-o5", "c-o5", "s-o5"]
    assert charges(tengine, "o5") == 1
    assert CALLS == {"reserve": 1, "charge": 1, "ship": 1}


def test_bad_selectors_are_rejected(tengine):
    with pytest.raises(ValueError, match="step index"):
        tengine.crash_before(0)
    with pytest.raises(TypeError, match="step"):
        tengine.crash_before(object())
    with pytest.raises(ValueError, match="times"):
        tengine.crash_after("x", times=0)
