"""Fuzzing the public calls with hostile values, on SQLite and PostgreSQL.

Every call either works or fails with a ``DurableError`` (a ``ConfigurationError`` names the
argument it refused): 0 raw driver errors (``NumericValueOutOfRange``, ``OverflowError``,
``UnicodeEncodeError``, ``sqlite3`` errors, stray ``TypeError``s). Nothing stored is corrupted:
a finished workflow keeps its row and steps, and the listings still read every row."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_core import Client, Queue, step, workflow
from durable_core.errors import ConfigurationError, DurableError

fuzz_queue = Queue("tests-fuzz", priority_enabled=True)

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

HOSTILE_TEXT = [
    "",
    "\x00",
    "a\x00b",
    "\ud800",
    "x" * 1001,
    "🚀" * 251,
    "'; DROP TABLE durable_workflows; --",
    "%s",
    "baseline",
]
HOSTILE_NUMBERS = [
    -1,
    0,
    1,
    -(2**31) - 1,
    2**31,
    2**63,
    2**70,
    -(2**70),
    math.inf,
    -math.inf,
    math.nan,
    1e12,
    1e308,
    -0.0,
    0.5,
    True,
]
hostile = st.one_of(
    st.none(),
    st.sampled_from(HOSTILE_TEXT),
    st.sampled_from(HOSTILE_NUMBERS),
    st.text(alphabet=st.characters(codec=None), max_size=12),
    st.integers(),
    st.floats(),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(dt.datetime(1, 1, 1)),
    st.just(dt.datetime(9999, 12, 31, 23, 59)),
    st.just(dt.date(2020, 1, 1)),
    st.just(object()),
)
# Waits take any non-negative number, so they get only values that end at once or are refused.
hostile_wait = st.sampled_from([0, -1, math.nan, -math.inf, "1", True, [1]])


@step
def fuzz_step(x):
    return x


@workflow
def fuzz_noop(x=None):
    return fuzz_step(x)


def _calls(engine, client, h, w):
    """One public call per entry, each taking hostile values for its arguments."""
    name = fuzz_noop.__durable_workflow__.name
    return {
        "start_workflow": lambda: engine.start_workflow(
            fuzz_noop, 1, workflow_id=h("workflow_id"), timeout=h("timeout")
        ),
        "queue.enqueue": lambda: fuzz_queue.enqueue(
            fuzz_noop,
            workflow_id=h("workflow_id"),
            priority=h("priority"),
            deduplication_id=h("deduplication_id"),
            delay=h("delay"),
            timeout=h("timeout"),
        ),
        "Client.enqueue": lambda: client.enqueue(
            h("queue_name"),
            h("workflow_name"),
            kwargs=h("kwargs"),
            workflow_id=h("workflow_id"),
            priority=h("priority"),
            deduplication_id=h("deduplication_id"),
            delay=h("delay"),
            timeout=h("timeout"),
            application_version=h("application_version"),
            max_recovery_attempts=h("max_recovery_attempts"),
        ),
        "Client.enqueue(valid names)": lambda: client.enqueue(
            "tests-fuzz",
            name,
            workflow_id=h("workflow_id"),
            priority=h("priority"),
            deduplication_id=h("deduplication_id"),
            max_recovery_attempts=h("max_recovery_attempts"),
        ),
        "list_workflows": lambda: engine.list_workflows(
            status=h("status"),
            name=h("name"),
            queue=h("queue"),
            created_after=h("created_after"),
            created_before=h("created_before"),
            limit=h("limit"),
            offset=h("offset"),
        ),
        "Client.list_workflows": lambda: client.list_workflows(
            status=h("status"), limit=h("limit"), offset=h("offset")
        ),
        "send": lambda: engine.send(
            h("workflow_id"), "m", topic=h("topic"), idempotency_key=h("idempotency_key")
        ),
        "Client.send": lambda: client.send(h("workflow_id"), "m", topic=h("topic")),
        "get_event": lambda: engine.get_event(h("workflow_id"), h("key"), timeout=w("timeout")),
        "Client.get_event": lambda: client.get_event(
            h("workflow_id"), h("key"), timeout=w("timeout")
        ),
        "read_stream": lambda: list(engine.read_stream(h("workflow_id"), h("key"))),
        "retrieve_workflow": lambda: engine.retrieve_workflow(h("workflow_id")),
        "list_steps": lambda: engine.list_steps(h("workflow_id")),
        "cancel_workflow": lambda: client.cancel_workflow(h("workflow_id")),
        "fork_workflow": lambda: engine.fork_workflow(
            h("workflow_id"), start_step=h("start_step"), workflow_id=h("workflow_id")
        ),
        "result": lambda: engine.retrieve_workflow("baseline").result(timeout=w("timeout")),
    }


@pytest.fixture
def fuzz_setup(engine):
    handle = engine.start_workflow(fuzz_noop, {"keep": "me"}, workflow_id="baseline")
    assert handle.result(timeout=10) == {"keep": "me"}
    before = (engine.store.get_workflow("baseline"), engine.store.load_steps("baseline"))
    client = Client(engine.database_url)
    yield engine, client
    try:
        assert (
            engine.store.get_workflow("baseline"),
            engine.store.load_steps("baseline"),
        ) == before
        for owner in (engine, client):  # every stored row still reads back
            statuses = owner.list_workflows(limit=None)
            assert any(s.workflow_id == "baseline" for s in statuses)
            for status in statuses:
                owner.retrieve_workflow(status.workflow_id).status()
        for row in engine.store.list_workflows(limit=None):  # nothing odd was stored silently
            assert type(row.priority) is int and -(2**31) <= row.priority < 2**31, row
            assert row.name and row.workflow_id and "\x00" not in row.name + row.workflow_id
            assert row.deduplication_id != ""
    finally:
        client.close()


CALL_NAMES = sorted(_calls(None, None, None, None))


@FUZZ
@given(call=st.sampled_from(CALL_NAMES), data=st.data())
def test_public_calls_never_raise_raw_errors(fuzz_setup, call, data):
    engine, client = fuzz_setup
    drawn: dict[str, object] = {}

    def h(argument: str) -> object:
        drawn[argument] = data.draw(hostile, label=argument)
        return drawn[argument]

    def w(argument: str) -> object:
        drawn[argument] = data.draw(hostile_wait, label=argument)
        return drawn[argument]

    try:
        _calls(engine, client, h, w)[call]()
    except ConfigurationError as exc:
        named = [a for a in drawn if a in str(exc) or a.replace("_", " ") in str(exc)]
        assert named or "start_step" in str(exc), f"{call}: {exc!r} names none of {list(drawn)}"
    except DurableError:
        pass  # WorkflowNotFound, DeduplicationConflict, WorkflowConflict, SerializationError...
    except Exception as exc:  # a raw error: the bug this test is about
        raise AssertionError(f"{call}{drawn!r} raised a raw {type(exc).__name__}: {exc}") from exc
