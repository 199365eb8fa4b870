"""The named bad-input bugs of issue 10, on both backends: each is refused before anything is
stored, with an error naming the argument, and what is stored stays readable."""

from __future__ import annotations

import math

import pytest

from durable_core import Client, Queue, step, transaction, workflow
from durable_core.errors import ConfigurationError

MAX_ID_BYTES = 1000  # the one ID rule (durable_core.validation.MAX_ID_BYTES)

vqueue = Queue("tests-validation", priority_enabled=True)


@step
def plus(x: int) -> int:
    return x + 1


@transaction
def tx_plus(x: int) -> int:
    return x + 100


@workflow
def child_flow(x: int) -> int:
    return tx_plus(x)


@workflow
def parent_flow(x: int) -> list:
    handle_value = child_flow(plus(x))  # a child workflow with a derived ID
    return [handle_value, tx_plus(x)]


@workflow
def noop() -> str:
    return "ok"


def test_a_900_byte_id_runs_transaction_steps_and_a_child(engine):
    """VARCHAR(255) in durable_transaction_outputs failed every @transaction of such IDs."""
    wid = "é" * 450  # 900 UTF-8 bytes
    handle = engine.start_workflow(parent_flow, 1, workflow_id=wid)
    assert handle.result(timeout=30) == [102, 101]
    children = engine.list_workflows(name=child_flow.__durable_workflow__.name)
    assert [c.parent_workflow_id for c in children] == [wid]
    assert len(children[0].workflow_id.encode()) <= MAX_ID_BYTES
    assert children[0].status == "SUCCESS"


def test_a_1000_byte_id_gets_children_within_the_rule(engine):
    wid = "x" * MAX_ID_BYTES
    assert engine.start_workflow(parent_flow, 2, workflow_id=wid).result(timeout=30) == [103, 102]
    (child,) = engine.list_workflows(name=child_flow.__durable_workflow__.name)
    assert len(child.workflow_id.encode()) <= MAX_ID_BYTES
    assert child.parent_workflow_id == wid


def test_child_ids_are_deterministic_unique_and_bounded():
    from durable_core.validation import MAX_ID_BYTES as rule
    from durable_core.validation import child_workflow_id

    assert rule == MAX_ID_BYTES
    assert child_workflow_id("order-7", 3) == "order-7-3"
    long_a, long_b = "a" * 999 + "1", "a" * 999 + "2"
    ids = {child_workflow_id(p, n) for p in (long_a, long_b) for n in (1, 2, 10**9)}
    assert len(ids) == 6
    assert all(len(i.encode()) <= MAX_ID_BYTES for i in ids)
    assert child_workflow_id(long_a, 5) == child_workflow_id(long_a, 5)
    multibyte = "🚀" * 250  # a cut must not split a character
    assert len(child_workflow_id(multibyte, 7).encode()) <= MAX_ID_BYTES
    child_workflow_id(multibyte, 7).encode("utf-8")


@pytest.mark.parametrize("timeout", [1e12, 1e300, 10**20])
def test_huge_timeouts_are_refused_and_listings_keep_working(engine, timeout):
    """timeout=1e12 was stored, after which every listing failed: year 33715 is out of range."""
    with pytest.raises(ConfigurationError, match="timeout"):
        engine.start_workflow(noop, timeout=timeout)
    with pytest.raises(ConfigurationError, match="timeout"):
        vqueue.enqueue(noop, timeout=timeout)
    with pytest.raises(ConfigurationError, match="delay"):
        vqueue.enqueue(noop, delay=timeout)
    assert engine.list_workflows() == []


def test_infinite_timeout_means_none_and_infinite_delay_is_refused(engine):
    """inf raised a raw OverflowError (int(inf * 1000))."""
    handle = engine.start_workflow(noop, timeout=math.inf)
    assert handle.result(timeout=math.inf) == "ok"
    assert engine.get_event(handle.workflow_id, "k", timeout=0) is None
    with pytest.raises(ConfigurationError, match="delay"):
        vqueue.enqueue(noop, delay=math.inf)
    assert [w.status for w in engine.list_workflows()] == ["SUCCESS"]


@pytest.fixture
def client(engine):
    c = Client(engine.database_url)
    yield c
    c.close()


def test_client_enqueue_refuses_an_empty_workflow_id(engine, client):
    """It silently used a new UUID (the engine rejects an empty ID)."""
    with pytest.raises(ConfigurationError, match="workflow_id"):
        client.enqueue("tests-validation", "some.workflow", workflow_id="")
    with pytest.raises(ConfigurationError, match="workflow_id"):
        engine.start_workflow(noop, workflow_id="")
    with pytest.raises(ConfigurationError, match="workflow_id"):
        vqueue.enqueue(noop, workflow_id="")
    assert client.list_workflows() == []


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"priority": "high"}, "priority"),
        ({"priority": 2**40}, "priority"),
        ({"priority": True}, "priority"),
        ({"deduplication_id": ""}, "deduplication_id"),
        ({"deduplication_id": "a\x00"}, "deduplication_id"),
        ({"max_recovery_attempts": -1}, "max_recovery_attempts"),
        ({"max_recovery_attempts": 2**40}, "max_recovery_attempts"),
        ({"max_recovery_attempts": "3"}, "max_recovery_attempts"),
        ({"application_version": "\ud800"}, "application_version"),
        ({"kwargs": ["not", "a", "dict"]}, "kwargs"),
        ({"timeout": 1e12}, "timeout"),
        ({"delay": -1}, "delay"),
    ],
    ids=repr,
)
def test_client_enqueue_validates_every_option(client, options, argument):
    with pytest.raises(ConfigurationError, match=argument):
        client.enqueue("tests-validation", "some.workflow", **options)
    assert client.list_workflows() == []


@pytest.mark.parametrize(
    ("queue_name", "workflow_name"),
    [
        ("", "w"),
        ("q", ""),
        ("q\x00", "w"),
        ("q", "w\x00"),
        (None, "w"),
        ("q", 5),
        ("q" * 1001, "w"),
    ],
    ids=lambda v: repr(v)[:20],
)
def test_client_enqueue_validates_names(client, queue_name, workflow_name):
    with pytest.raises(ConfigurationError, match="queue_name|workflow_name"):
        client.enqueue(queue_name, workflow_name)
    assert client.list_workflows() == []


def test_client_enqueue_of_an_empty_deduplication_id_is_not_a_raw_unique_violation(client):
    for _ in range(2):
        with pytest.raises(ConfigurationError, match="deduplication_id"):
            client.enqueue("tests-validation", "some.workflow", deduplication_id="")


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"limit": -1}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"limit": 2**64}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 1.5}, "offset"),
        ({"name": "a\x00"}, "name"),
        ({"queue": "\ud800"}, "queue"),
        ({"status": 5}, "status"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": 12}, "created_before"),
    ],
    ids=repr,
)
def test_listings_validate_their_arguments(engine, client, options, argument):
    """limit=-1 returned everything on SQLite and was a raw error on PostgreSQL."""
    engine.start_workflow(noop).result(timeout=10)
    for owner in (engine, client):
        with pytest.raises(ConfigurationError, match=argument):
            owner.list_workflows(**options)
    assert len(engine.list_workflows(limit=0)) == 0
    assert len(engine.list_workflows(limit=None)) == 1


def test_a_stored_time_out_of_datetime_range_does_not_break_listings(engine):
    """Rows written before timeouts were bounded (or by hand) still list and show."""
    handle = engine.start_workflow(noop)
    handle.result(timeout=10)
    far = 10**15 * 1000  # year ~31 million, in ms
    engine.store.run(
        "UPDATE durable_workflows SET updated_at = %s, deadline = %s, timeout_ms = %s "
        "WHERE workflow_id = %s",
        (far, far, far, handle.workflow_id),
    )
    (status,) = engine.list_workflows()
    assert status.updated_at.year == 9999
    assert engine.retrieve_workflow(handle.workflow_id).status().status == "SUCCESS"
