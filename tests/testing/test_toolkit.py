"""Step stubs, enqueue assertions, messages and events, run_until_idle."""

from __future__ import annotations

import pytest

from durable_core import (
    Queue,
    recv,
    send,
    set_event,
    start_workflow,
    step,
    workflow,
)
from durable_core.errors import StepRetriesExceeded
from durable_core.testing import TestEngine

mail = Queue("tk-mail")
REAL_CALLS: list[str] = []


@step
def charge_card(order: str, amount: int) -> str:
    REAL_CALLS.append(order)
    raise RuntimeError("the real payment provider must not be called in tests")


@step(retries=2, retry_delay=0.0)
def flaky(order: str) -> str:
    return "real"


@workflow
def send_receipt(order: str, to: str) -> str:
    return f"sent {order} to {to}"


@workflow
def pay(order: str, amount: int) -> str:
    receipt = charge_card(order, amount)
    set_event("receipt", receipt)
    mail.enqueue(send_receipt, order, to="ada@example.com")
    return receipt


@workflow
def ping(target: str) -> str:
    send(target, {"hello": target}, topic="greet")
    return "pinged"


@workflow
def listener() -> object:
    return recv("greet", timeout=30)


@workflow
def parent(n: int) -> list:
    handles = [start_workflow(send_receipt, f"o{i}", to="x") for i in range(n)]
    return [h.result() for h in handles]


@pytest.fixture(autouse=True)
def clear():
    REAL_CALLS.clear()


def test_stub_replaces_the_body_and_keeps_checkpointing(tengine):
    stub = tengine.stub_step(charge_card, returns="auth-1")
    handle = tengine.start_workflow(pay, "o1", 42)
    assert handle.result(timeout=10) == "auth-1"
    assert REAL_CALLS == []
    assert stub.calls == [(("o1", 42), {})]
    [first, *_] = tengine.list_steps(handle.workflow_id)
    assert first.name.endswith("charge_card") and first.result == "auth-1"
    assert tengine.events(handle.workflow_id) == [("receipt", "auth-1")]


def test_stub_raises_and_fn(tengine):
    tengine.stub_step("charge_card", raises=ValueError("declined"))
    with pytest.raises(ValueError, match="declined"):
        tengine.start_workflow(pay, "o2", 1).result(timeout=10)
    tengine.stub_step("charge_card", fn=lambda order, amount: f"{order}:{amount * 2}")
    assert tengine.start_workflow(pay, "o3", 21).result(timeout=10) == "o3:42"
    tengine.clear_faults()
    with pytest.raises(RuntimeError, match="real payment provider"):
        tengine.start_workflow(pay, "o4", 1).result(timeout=10)


def test_stub_is_retried_like_the_real_body(tengine):
    calls = tengine.stub_step(flaky, raises=OSError("down")).calls

    @workflow(name="tk.uses_flaky")
    def uses_flaky() -> str:
        return flaky("o5")

    with pytest.raises(StepRetriesExceeded):
        tengine.start_workflow(uses_flaky).result(timeout=10)
    assert len(calls) == 3


def test_assert_enqueued_matches_partially(tengine):
    tengine.stub_step(charge_card, returns="auth")
    tengine.start_workflow(pay, "o6", 10).result(timeout=10)
    tengine.run_until_idle()
    [found] = tengine.assert_enqueued(queue="tk-mail", workflow=send_receipt, args=("o6",))
    assert found.status == "SUCCESS" and found.result == "sent o6 to ada@example.com"
    tengine.assert_enqueued(workflow=send_receipt, kwargs={"to": "ada@example.com"}, count=1)
    with pytest.raises(AssertionError, match="o7") as info:
        tengine.assert_enqueued(queue="tk-mail", args=("o7",))
    assert "send_receipt('o6',)" in str(info.value)  # the message lists what was enqueued


def test_messages_sent_and_received(tengine):
    target = tengine.start_workflow(listener)
    tengine.start_workflow(ping, target.workflow_id).result(timeout=10)
    assert target.result(timeout=10) == {"hello": target.workflow_id}
    [received] = tengine.messages_received(target.workflow_id)
    assert received.topic == "greet" and received.message == {"hello": target.workflow_id}
    pinger = [w for w in tengine.list_workflows() if w.name.endswith(".ping")][0]
    assert tengine.messages_sent(pinger.workflow_id) == [received]


def test_run_until_idle_serves_queues_and_children(tengine):
    handles = [mail.enqueue(send_receipt, f"q{i}", to="y") for i in range(5)]
    top = tengine.start_workflow(parent, 3)
    tengine.run_until_idle()
    assert all(h.status().status == "SUCCESS" for h in [*handles, top])
    assert top.status().result == ["sent o0 to x", "sent o1 to x", "sent o2 to x"]


def test_run_until_idle_returns_while_a_workflow_waits_for_a_message(tengine):
    handle = tengine.start_workflow(listener)
    tengine.run_until_idle(advance_time=False)
    assert handle.status().status == "PENDING"
    tengine.send(handle.workflow_id, "hi", topic="greet")
    tengine.run_until_idle(advance_time=False)
    assert handle.status().result == "hi"
    timing_out = tengine.start_workflow(listener)
    tengine.run_until_idle()  # skips ahead to the recv timeout: nothing else can happen
    assert timing_out.status().status == "SUCCESS" and timing_out.status().result is None


def test_test_engine_is_the_default_and_cleans_up(test_engine_url):
    from durable_core import get_default_engine

    with TestEngine(test_engine_url, schema_prefix="testing_") as engine:
        assert get_default_engine() is engine
        assert pay.__wrapped__  # the module's workflows are usable on it
        url = engine.url
    with pytest.raises(Exception, match="No engine"):
        get_default_engine()
    if url.dialect == "sqlite":
        import os

        assert not os.path.exists(url.path)


def test_test_engine_shadows_no_engine_attribute_by_accident():
    """TestEngine extends Engine: a private name of its own that Engine also uses (now or
    after a change to Engine) would silently break one of them."""
    import inspect
    import re

    from durable_core import Engine

    base = Engine("sqlite:///unused.sqlite3")  # constructed, never launched: no file
    overrides = {"launch", "shutdown", "__enter__", "__init__", "__doc__", "__module__"}
    overrides |= {"submit", "run_in_pool"}  # run_in_caller: public methods, on purpose
    overrides |= {"awaiting_result"}  # the declared hook (SystemDatabase) the clock needs
    methods = {n for n in vars(TestEngine) if not n.startswith("__") or n in ("__enter__",)}
    assigned = set(re.findall(r"self\.(\w+)\s*(?::[^=\n]+)?=[^=]", inspect.getsource(TestEngine)))
    assigned -= {"step_hooks"}  # Engine's seam for test tooling, set on purpose
    assigned -= {"scheduler"}  # set on purpose: the test engine fires ticks on its clock
    clashes = {n for n in methods - overrides if hasattr(Engine, n) or n in vars(base)}
    clashes |= {n for n in assigned if n in vars(base) or hasattr(Engine, n)}
    assert not clashes
