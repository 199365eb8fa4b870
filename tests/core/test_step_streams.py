"""``write_stream`` from a running step's body: the value is written at once (readers see it
while the step runs), has no step row of its own, is tagged with the step's ID (a fork copies
it with that step and drops it with it) and is refused to an execution that no longer owns
the workflow."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from durable_core import (
    close_stream,
    read_stream,
    step,
    step_attempt,
    step_id,
    transaction,
    workflow,
    write_stream,
    write_stream_async,
)
from durable_core.errors import NotInWorkflow
from durable_core.store import OwnershipLost

gates: dict[str, threading.Event] = {}
runs: dict[str, list[str]] = {}
seen_errors: dict[str, list[str]] = {}


def _gate(wid: str) -> threading.Event:
    return gates.setdefault(wid, threading.Event())


@step
def tokens(wid: str, n: int) -> str:
    runs.setdefault(wid, []).append("tokens")
    for i in range(n):
        write_stream("tokens", {"i": i, "step_id": step_id(), "attempt": step_attempt()})
    if not _gate(wid).wait(60):  # until the reader has seen the values
        raise TimeoutError("the reader never saw the values")
    return "tokens done"


@step
def more(wid: str) -> str:
    runs.setdefault(wid, []).append("more")
    write_stream("tokens", "more")
    return "more done"


@workflow(name="tests.step_streams.live")
def live(wid: str, n: int) -> list[str]:
    first = tokens(wid, n)
    write_stream("tokens", "between")  # a checkpoint of the body, between the two steps
    return [first, more(wid)]


@step
async def async_tokens(wid: str, n: int) -> str:
    for i in range(n):
        await write_stream_async("tokens", i)
    await asyncio.to_thread(_gate(wid).wait, 60)
    return "done"


@workflow(name="tests.step_streams.async_live")
async def async_live(wid: str, n: int) -> str:
    return await async_tokens(wid, n)


def _names(engine, wid: str) -> list[str]:
    return [s.name.rsplit(".", 1)[-1] for s in engine.list_steps(wid)]


def _first(engine, wid: str, n: int) -> list:
    """The first ``n`` values of stream ``tokens``, read while the workflow runs."""
    reader = iter(engine.read_stream(wid, "tokens"))
    return [next(reader) for _ in range(n)]


@pytest.mark.parametrize("wf", [live, async_live], ids=["sync", "async"])
def test_readers_see_a_steps_values_while_it_runs(engine, wf):
    wid = f"step-stream-{uuid.uuid4()}"
    handle = engine.start_workflow(wf, wid, 3, workflow_id=wid)
    got = _first(engine, wid, 3)  # blocks until the three values are there
    assert engine.get_workflow_status(wid).status == "PENDING"
    assert [s.name for s in engine.list_steps(wid)] == []  # the step has not finished
    _gate(wid).set()
    handle.result(timeout=60)
    if wf is live:
        assert got == [{"i": i, "step_id": 1, "attempt": 1} for i in range(3)]
        assert _names(engine, wid) == ["tokens", "write_stream", "more"]
        rows = engine.store.list_stream_values(wid)
        assert [r[4] for r in rows] == [1, 1, 1, 2, 3]  # tagged with the step that wrote them
        assert list(read_stream(wid, "tokens"))[3:] == ["between", "more"]
    else:
        assert got == [0, 1, 2]
        assert _names(engine, wid) == ["async_tokens"]


def test_a_fork_copies_a_steps_values_with_the_step_and_drops_them_with_it(engine):
    wid = f"step-stream-fork-{uuid.uuid4()}"
    _gate(wid).set()
    engine.start_workflow(live, wid, 2, workflow_id=wid).result(timeout=60)
    everything = list(engine.read_stream(wid, "tokens"))
    assert runs[wid] == ["tokens", "more"]

    # From after the last step: every value copied, no step runs, nothing written twice.
    whole = engine.fork_workflow(wid, 4)
    whole.result(timeout=60)
    assert list(engine.read_stream(whole.workflow_id, "tokens")) == everything
    assert runs[wid] == ["tokens", "more"]

    # From the second step: the first step's values copied, the second's dropped and
    # written again, once, by its re-run.
    tail = engine.fork_workflow(wid, 3)
    tail.result(timeout=60)
    assert list(engine.read_stream(tail.workflow_id, "tokens")) == everything
    assert runs[wid] == ["tokens", "more", "more"]

    # From the first step: none of its values copied; the re-run writes them again, once.
    runs.pop(wid)
    again = engine.fork_workflow(wid, 1)
    again.result(timeout=60)
    assert list(engine.read_stream(again.workflow_id, "tokens")) == everything
    assert runs[wid] == ["tokens", "more"]


@step
def superseded(wid: str) -> str:
    write_stream("tokens", "before")
    _gate(wid).wait(60)
    try:
        write_stream("tokens", "after")
    except BaseException as exc:
        seen_errors.setdefault(wid, []).append(type(exc).__name__)
        raise
    return "not recorded"


@workflow(name="tests.step_streams.superseded")
def superseded_run(wid: str) -> str:
    return superseded(wid)


def test_a_superseded_execution_cannot_append(engine):
    wid = f"step-stream-stale-{uuid.uuid4()}"
    engine.start_workflow(superseded_run, wid, workflow_id=wid)
    assert _first(engine, wid, 1) == ["before"]
    # Another executor takes the workflow over (a recovery): this execution's run token is
    # no longer the workflow's.
    engine.store.run(
        "UPDATE durable_workflows SET run_token = %s WHERE workflow_id = %s", ("other", wid)
    )
    _gate(wid).set()
    deadline = time.monotonic() + 30
    while not seen_errors.get(wid):
        assert time.monotonic() < deadline, "the step never tried its second append"
        time.sleep(0.02)
    assert seen_errors[wid] == ["Aborted"]  # the execution stops, as at a lost checkpoint
    assert [r[2] for r in engine.store.list_stream_values(wid)] == ['"before"']
    assert engine.list_steps(wid) == []

    with pytest.raises(OwnershipLost):
        engine.store.append_stream(wid, "stale-token", 1, "tokens", '"x"')
    assert len(engine.store.list_stream_values(wid)) == 1


@step
def closes() -> None:
    close_stream("tokens")


@workflow(name="tests.step_streams.closes")
def closes_run() -> None:
    closes()


@transaction
def in_transaction() -> None:
    write_stream("tokens", 1)


@workflow(name="tests.step_streams.in_transaction")
def in_transaction_run() -> None:
    in_transaction()


def test_what_a_step_body_cannot_do(engine):
    # Closing a stream ends its readers: it stays a checkpoint of the workflow body.
    with pytest.raises(Exception, match="close_stream"):
        engine.start_workflow(closes_run).result(timeout=60)
    # A @transaction body runs in the application's transaction, not beside it.
    with pytest.raises(Exception, match="write_stream"):
        engine.start_workflow(in_transaction_run).result(timeout=60)
    with pytest.raises(NotInWorkflow, match="step_id"):
        step_id()
