"""Hostile and odd identifiers, keys, payloads and timeouts, on SQLite and PostgreSQL: each
either works (and round-trips through the database) or fails with a clear ConfigurationError
naming the problem, and nothing already stored changes."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_core import (
    Queue,
    close_stream,
    recv,
    send,
    set_event,
    sleep,
    step,
    workflow,
    workflow_id,
    write_stream,
)
from durable_core.errors import ConfigurationError, WorkflowNotFound

DB = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
hostile_queue = Queue("tests-hostile")

NASTY = [
    "",
    "\x00",
    "a\x00b",
    "'; DROP TABLE durable_workflows; --",
    '"quoted" \\ back\\slash',
    "%s %(x)s {} {0}",
    "ünïcødé ✓ 🚀 中文 עברית",
    "\ud800 lone surrogate",
    "line\nbreak\ttab\r",
    " ",
    "x" * 10_000,  # 10 KB
    "é" * 999,  # 1998 bytes
    "🚀" * 250,  # exactly 1000 bytes
]
texts = st.one_of(st.sampled_from(NASTY), st.text(alphabet=st.characters(codec=None), max_size=40))


@step
def echo_step(value):
    return value


@workflow
def echo(value):
    return echo_step(value)


@workflow
def keyed(key: str) -> str:
    set_event(key, key)
    write_stream(key, key)
    close_stream(key)
    send(workflow_id(), key, topic=key)
    return recv(topic=key, timeout=10)


def snapshot(engine, wid: str):
    row = engine.store.get_workflow(wid)
    return row, engine.store.load_steps(wid)


@pytest.fixture
def baseline(engine):
    """A finished workflow whose row and steps must never change."""
    handle = engine.start_workflow(echo, {"keep": "me"}, workflow_id="baseline")
    assert handle.result(timeout=10) == {"keep": "me"}
    before = snapshot(engine, "baseline")
    yield
    assert snapshot(engine, "baseline") == before


def assert_clear(exc: BaseException, *words: str) -> None:
    assert isinstance(exc, ConfigurationError), repr(exc)
    assert any(w in str(exc) for w in words), str(exc)


@DB
@given(wid=texts)
def test_workflow_ids(engine, baseline, wid):
    try:
        handle = engine.start_workflow(echo, wid, workflow_id=wid)
    except ConfigurationError as exc:
        assert_clear(exc, "workflow_id")
        return
    assert handle.result(timeout=10) == wid
    status = engine.retrieve_workflow(wid).status()
    assert status.workflow_id == wid and status.args == (wid,)
    assert engine.list_steps(wid)[0].result == wid
    again = engine.start_workflow(echo, "other", workflow_id=wid)  # idempotent: not re-run
    assert again.result(timeout=10) == wid


@DB
@given(wid=texts)
def test_lookups_with_odd_ids_are_not_found_or_rejected(engine, baseline, wid):
    for call in (
        lambda: engine.retrieve_workflow(wid),
        lambda: engine.send(wid, "hello"),
        lambda: engine.get_event(wid, "k", timeout=0),
        lambda: list(engine.read_stream(wid, "k")),
        lambda: engine.cancel_workflow(wid),
    ):
        try:
            result = call()
        except WorkflowNotFound:
            continue
        except ConfigurationError as exc:
            assert_clear(exc, "workflow_id")
            continue
        assert result in (None, [])  # get_event of an unknown workflow, empty stream


@DB
@given(key=texts)
def test_topics_event_and_stream_keys(engine, baseline, key):
    handle = engine.start_workflow(keyed, key)
    try:
        assert handle.result(timeout=15) == key
    except ConfigurationError as exc:
        assert_clear(exc, "topic", "event key", "stream key")
        with pytest.raises(ConfigurationError):
            engine.get_event(handle.workflow_id, key, timeout=0)
        with pytest.raises(ConfigurationError):
            engine.send(handle.workflow_id, "x", topic=key)
        return
    assert engine.get_event(handle.workflow_id, key, timeout=1) == key
    assert list(engine.read_stream(handle.workflow_id, key)) == [key]


@DB
@given(dedup=texts)
def test_deduplication_ids(engine, baseline, dedup):
    try:
        handle = hostile_queue.enqueue(echo, dedup, deduplication_id=dedup)
    except ConfigurationError as exc:
        assert_clear(exc, "deduplication_id")
        return
    assert handle.result(timeout=15) == dedup


TEN_MB = "ä" * (5 * 1024 * 1024)  # 10 MiB of UTF-8


@step
def big_result() -> str:
    return TEN_MB


@workflow
def big_payloads(arg: str) -> int:
    result = big_result()
    message = recv(topic="big", timeout=30)
    return len(arg) + len(result) + len(message)


def test_ten_megabyte_payloads(engine):
    handle = engine.start_workflow(big_payloads, TEN_MB)
    engine.send(handle.workflow_id, TEN_MB, topic="big")
    assert handle.result(timeout=60) == 3 * len(TEN_MB)
    assert engine.list_steps(handle.workflow_id)[0].result == TEN_MB
    assert engine.retrieve_workflow(handle.workflow_id).status().args == (TEN_MB,)


BAD_TIMEOUTS = [math.nan, -1, -0.001, math.inf * -1, "5", True]


@workflow
def sleeper(seconds) -> str:
    sleep(seconds)
    return "slept"


@workflow
def receiver(timeout) -> object:
    return recv(timeout=timeout)


@pytest.mark.parametrize("bad", BAD_TIMEOUTS, ids=repr)
def test_bad_timeouts_are_rejected_clearly(engine, bad):
    done = engine.start_workflow(echo, 1)
    done.result(timeout=10)
    count = len(engine.list_workflows(limit=None))
    calls = [
        lambda: done.result(timeout=bad),
        lambda: engine.get_event(done.workflow_id, "k", timeout=bad),
        lambda: engine.start_workflow(echo, 1, timeout=bad),
        lambda: hostile_queue.enqueue(echo, 1, timeout=bad),
        lambda: hostile_queue.enqueue(echo, 1, delay=bad),
    ]
    for call in calls:
        with pytest.raises(ConfigurationError, match="timeout|delay"):
            call()
    assert len(engine.list_workflows(limit=None)) == count  # nothing was stored
    for wf in (sleeper, receiver):
        with pytest.raises(ConfigurationError, match="seconds"):
            engine.start_workflow(wf, bad).result(timeout=10)
