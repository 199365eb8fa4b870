"""A scrape after a known workload shows the right counts (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid

import pytest

from durable_core import Client, Queue, recovery, step, workflow
from durable_core import metrics as m

pytest.importorskip("prometheus_client")

RUN = uuid.uuid4().hex[:8]
served = Queue(f"metrics-served-{RUN}")
calls = {"flaky": 0}


@step(retries=2, retry_delay=0.01)
def flaky_step() -> str:
    calls["flaky"] += 1
    if calls["flaky"] % 2:
        raise RuntimeError("first attempt fails")
    return "ok"


@step
def plain_step(n: int) -> int:
    return n


@workflow(name=f"metrics-ok-{RUN}")
def ok_flow(n: int) -> int:
    return plain_step(n)


@workflow(name=f"metrics-retry-{RUN}")
def retry_flow() -> str:
    return flaky_step()


@workflow(name=f"metrics-bad-{RUN}")
def bad_flow() -> None:
    raise ValueError("boom")


@workflow(name=f"metrics-fragile-{RUN}", max_recovery_attempts=1)
def fragile_flow() -> str:
    return "fine"


def parse(text: str) -> dict[str, float]:
    """``{'metric{labels}': value}`` from the text exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def scrape(engine) -> dict[str, float]:
    return parse(m.exposition(engine.store).decode())


def delta(before: dict, after: dict, key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_scrape_after_a_known_workload(engine, database_url):
    before = scrape(engine)
    for n in range(3):
        assert engine.start_workflow(ok_flow, n).result(timeout=10) == n
    assert engine.start_workflow(retry_flow).result(timeout=10) == "ok"
    with pytest.raises(ValueError):
        engine.start_workflow(bad_flow).result(timeout=10)
    for n in range(2):
        assert served.enqueue(ok_flow, 10 + n).result(timeout=10) == 10 + n
    # Three ENQUEUED workflows no process here can claim (their name is registered nowhere).
    with Client(database_url) as client:
        for _ in range(3):
            client.enqueue(f"metrics-idle-{RUN}", f"unknown-{RUN}")
    after = scrape(engine)

    ok, bad, retry = (f"metrics-{k}-{RUN}" for k in ("ok", "bad", "retry"))
    assert delta(before, after, f'durable_workflows_started_total{{name="{ok}"}}') == 5
    assert (
        delta(before, after, f'durable_workflows_finished_total{{name="{ok}",status="SUCCESS"}}')
        == 5
    )
    assert (
        delta(before, after, f'durable_workflows_finished_total{{name="{bad}",status="ERROR"}}')
        == 1
    )
    assert (
        delta(before, after, f'durable_workflows_finished_total{{name="{retry}",status="SUCCESS"}}')
        == 1
    )
    assert (
        delta(
            before,
            after,
            'durable_step_retries_total{name="' + flaky_step.__durable_step__.name + '"}',
        )
        == 1
    )
    plain = plain_step.__durable_step__.name
    assert (
        delta(
            before, after, f'durable_step_duration_seconds_count{{name="{plain}",status="SUCCESS"}}'
        )
        == 5
    )
    assert delta(before, after, f'durable_queue_claimed_total{{queue="{served.name}"}}') == 2
    idle = f"metrics-idle-{RUN}"
    assert after[f'durable_queue_depth{{queue="{idle}"}}'] == 3
    assert after[f'durable_queue_oldest_age_seconds{{queue="{idle}"}}'] >= 0
    assert f'durable_queue_depth{{queue="{served.name}"}}' not in after  # drained
    assert (
        after[f'durable_executor_heartbeat_age_seconds{{executor_id="{engine.executor_id}"}}'] < 60
    )
    assert 0 < after["durable_database_roundtrip_seconds"] < 10
    assert after["durable_heartbeat_roundtrip_seconds_count"] >= 1  # the launch beat at least


def test_recoveries_and_dead_letters_are_counted(engine):
    before = scrape(engine)
    rows = []
    for attempts in (0, 1):  # the second is past max_recovery_attempts=1 once recovered
        row, _ = engine.create_workflow(
            fragile_flow.__durable_workflow__, (), {}, workflow_id=str(uuid.uuid4())
        )
        engine.store.run(
            "UPDATE durable_workflows SET status = 'PENDING', run_token = 'dead', "
            "executor_id = %s, recovery_attempts = %s WHERE workflow_id = %s",
            (engine.executor_id, attempts, row.workflow_id),
        )
        rows.append((row.workflow_id, "dead", row.name))
    handles = recovery.recover_rows(engine, rows, "adoption")
    assert [h.result(timeout=10) for h in handles] == ["fine"]
    after = scrape(engine)
    assert delta(before, after, 'durable_recoveries_total{kind="adoption"}') == 1
    fragile = f"metrics-fragile-{RUN}"
    assert delta(before, after, f'durable_dead_letters_total{{name="{fragile}"}}') == 1
    # A recovered execution is not a new start.
    assert delta(before, after, f'durable_workflows_started_total{{name="{fragile}"}}') == 0
