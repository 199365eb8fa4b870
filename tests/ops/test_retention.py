"""Engine(retention=...): the maintenance loop deletes finished workflows by age and status,
in bounded batches; the default keeps everything (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from durable_core import Engine, workflow
from durable_core.errors import ConfigurationError
from durable_core.retention import Retention
from tests.waiting import wait_for

RUN = uuid.uuid4().hex[:8]


@workflow(name=f"retention-ok-{RUN}")
def ok_flow(n: int) -> int:
    return n


@workflow(name=f"retention-bad-{RUN}")
def bad_flow() -> None:
    raise ValueError("boom")


def count(engine, status: str) -> int:
    return engine.store.fetchone(
        "SELECT COUNT(*) FROM durable_workflows WHERE status = %s AND name LIKE %s",
        (status, f"retention-%-{RUN}"),
    )[0]


def run_workload(engine) -> None:
    for n in range(5):
        engine.start_workflow(ok_flow, n).result(timeout=10)
    with pytest.raises(ValueError):
        engine.start_workflow(bad_flow).result(timeout=10)


def test_the_maintenance_loop_applies_the_policy_by_status(database_url):
    policy = Retention(
        older_than=dt.timedelta(0), statuses=("SUCCESS",), interval=0.1, batch=2, max_batches=1
    )
    engine = Engine(database_url, run_scheduler=False, retention=policy)
    engine.launch()
    try:
        run_workload(engine)
        wait_for(lambda: count(engine, "SUCCESS") == 0, timeout=30, what="SUCCESS rows deleted")
        assert count(engine, "ERROR") == 1  # another status: kept
    finally:
        engine.shutdown(timeout=5)


def test_one_pass_is_bounded_and_young_workflows_stay(engine):
    run_workload(engine)
    bounded = Retention(older_than=dt.timedelta(0), batch=2, max_batches=2)
    assert bounded.apply(engine.store) == 4  # two batches of two, the rest next pass
    assert count(engine, "SUCCESS") + count(engine, "ERROR") == 2
    young = Retention(older_than=dt.timedelta(hours=1))
    assert young.apply(engine.store) == 0
    assert bounded.apply(engine.store) == 2


def test_retention_is_off_by_default(engine):
    assert engine.retention == ()


@pytest.mark.parametrize(
    "options, named",
    [
        ({"older_than": 30}, "older_than"),
        ({"older_than": dt.timedelta(days=-1)}, "older_than"),
        ({"older_than": dt.timedelta(days=1), "statuses": ("PENDING",)}, "statuses"),
        ({"older_than": dt.timedelta(days=1), "interval": 0}, "interval"),
        ({"older_than": dt.timedelta(days=1), "batch": 0}, "batch"),
        ({"older_than": dt.timedelta(days=1), "max_batches": 1.5}, "max_batches"),
    ],
)
def test_bad_policies_are_refused(options, named):
    with pytest.raises(ConfigurationError, match=named):
        Retention(**options)


def test_engine_refuses_what_is_not_a_policy(database_url):
    with pytest.raises(TypeError, match="retention"):
        Engine(database_url, retention=[dt.timedelta(days=1)])
