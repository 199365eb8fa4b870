"""Engine lifecycle: a relaunch after shutdown works fully, shutdown is idempotent, the
executor lease is taken at launch (issue 10: "An engine launched again after shutdown() is
half-dead", "Two live processes with the same executor ID")."""

from __future__ import annotations

import os
import socket
import time
import uuid

import pytest

from durable_core import Engine, recv, sleep_async, workflow
from durable_core.errors import DatabaseConfigurationError, ExecutorIdInUse, WorkflowCancelled
from tests.conftest import PG_URL
from tests.crash.harness import wait_for

LEASE, BEAT = 1.5, 0.3
# The takeover tests launch with a lease long enough that waiting for it could not pass for
# "at once" even on a loaded machine, where a launch and shutdown alone can take 2-3 s.
TAKEOVER_LEASE = 30.0


@workflow(name="test_lifecycle.waits")
def waits() -> str:
    return recv("never", timeout=30) or "timed out"


@workflow(name="test_lifecycle.quick")
def quick(x: int) -> int:
    return x + 1


@workflow(name="test_lifecycle.quick_async")
async def quick_async(x: int) -> int:
    await sleep_async(0.01)
    return x * 2


def make_engine(database_url: str, executor_id: str | None = None, **kw) -> Engine:
    return Engine(
        database_url,
        executor_id=executor_id or f"life-{uuid.uuid4().hex[:8]}",
        lease_seconds=kw.pop("lease_seconds", LEASE),
        heartbeat_seconds=BEAT,
        run_scheduler=False,
        suspend_threshold=0.2,
        **kw,
    )


def heartbeat_at(engine: Engine) -> int | None:
    holder = engine.store.executor_holder(engine.executor_id)
    return None if holder is None else holder[2]


def orphan(engine: Engine, x: int) -> str:
    """A PENDING workflow of an executor that is gone (no heartbeat row, old update)."""
    handle = engine.start_workflow(quick, x)
    handle.result(timeout=10)
    engine.store.run(
        "UPDATE durable_workflows SET status = 'PENDING', executor_id = 'gone', "
        "run_token = 'old', output = NULL, updated_at = 0, finished_at = NULL "
        "WHERE workflow_id = %s",
        (handle.workflow_id,),
    )
    return handle.workflow_id


def test_relaunch_after_shutdown_works_fully(database_url):
    engine = make_engine(database_url)
    engine.launch()
    assert engine.start_workflow(quick, 1).result(timeout=10) == 2
    engine.shutdown(timeout=5)
    engine.shutdown(timeout=5)  # a second shutdown is harmless

    engine.launch()
    try:
        # Heartbeats: the lease is renewed by the relaunched engine.
        first = heartbeat_at(engine)
        assert first is not None
        wait_for(lambda: (heartbeat_at(engine) or 0) > first, 10, "a renewed heartbeat")
        # Work, sync and async (a fresh event loop).
        assert engine.start_workflow(quick, 2).result(timeout=10) == 3
        assert engine.start_workflow(quick_async, 4).result(timeout=10) == 8
        # Deadline expiry.
        handle = engine.start_workflow(waits, timeout=1)
        with pytest.raises(WorkflowCancelled):
            handle.result(timeout=20)
        # Adoption of a dead executor's work (after a lease of unbroken contact).
        adopted = orphan(engine, 10)
        assert engine.retrieve_workflow(adopted).result(timeout=30) == 11
        assert engine.retrieve_workflow(adopted).status().executor_id == engine.executor_id
    finally:
        engine.shutdown(timeout=5)
    engine.shutdown(timeout=5)


def test_shutdown_removes_the_lease_and_a_restart_takes_it_at_once(database_url):
    executor_id = f"life-{uuid.uuid4().hex[:8]}"
    engine = make_engine(database_url, executor_id, lease_seconds=TAKEOVER_LEASE)
    engine.launch()
    engine.shutdown(timeout=5)
    started = time.monotonic()
    with make_engine(database_url, executor_id, lease_seconds=TAKEOVER_LEASE) as again:
        assert heartbeat_at(again) is not None
    assert time.monotonic() - started < TAKEOVER_LEASE / 2  # no waiting for a lease


def test_a_stale_holder_on_another_host_is_taken_over_at_once(engine, database_url):
    executor_id = f"life-{uuid.uuid4().hex[:8]}"
    engine.store.run(
        "INSERT INTO durable_executors (executor_id, application_version, hostname, pid, "
        "started_at, heartbeat_at) VALUES (%s, 'v', 'elsewhere', 1, 0, %s)",
        (executor_id, engine.clock.now_ms() - int(TAKEOVER_LEASE * 1000) - 1000),
    )
    started = time.monotonic()
    with make_engine(database_url, executor_id, lease_seconds=TAKEOVER_LEASE) as eng:
        assert eng.store.executor_holder(executor_id)[:2] == (socket.gethostname(), os.getpid())
    assert time.monotonic() - started < TAKEOVER_LEASE / 2


def test_a_dead_holder_on_this_host_is_taken_over_at_once(engine, database_url):
    """A crash, then a restart with the same executor ID: the old row names this host and a
    process ID that no longer runs, so its fresh heartbeat does not make it live."""
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    executor_id = f"life-{uuid.uuid4().hex[:8]}"
    engine.store.run(
        "INSERT INTO durable_executors (executor_id, application_version, hostname, pid, "
        "started_at, heartbeat_at) VALUES (%s, 'v', %s, %s, 0, %s)",
        (executor_id, socket.gethostname(), dead.pid, engine.clock.now_ms()),
    )
    started = time.monotonic()
    with make_engine(database_url, executor_id, lease_seconds=TAKEOVER_LEASE) as eng:
        assert eng.store.executor_holder(executor_id)[1] == os.getpid()
    assert time.monotonic() - started < TAKEOVER_LEASE / 2


def test_a_silent_holder_elsewhere_is_taken_over_after_its_lease(engine, database_url):
    """A fresh heartbeat from another host that is not renewed (that process died): launch
    waits for its lease to expire, then takes over."""
    executor_id = f"life-{uuid.uuid4().hex[:8]}"
    engine.store.run(
        "INSERT INTO durable_executors (executor_id, application_version, hostname, pid, "
        "started_at, heartbeat_at) VALUES (%s, 'v', 'elsewhere', 1, 0, %s)",
        (executor_id, engine.clock.now_ms()),
    )
    started = time.monotonic()
    with make_engine(database_url, executor_id) as eng:
        assert eng.store.executor_holder(executor_id)[0] == socket.gethostname()
    waited = time.monotonic() - started
    assert LEASE - 0.5 <= waited <= LEASE + 10, waited


def test_a_live_holder_elsewhere_is_refused(engine, database_url):
    """Another process renews the row (here: this test, pretending to be another host)."""
    import threading

    executor_id = f"life-{uuid.uuid4().hex[:8]}"
    stop = threading.Event()

    def other_host() -> None:
        while not stop.is_set():
            engine.store.run(
                "INSERT INTO durable_executors (executor_id, application_version, hostname, "
                "pid, started_at, heartbeat_at) VALUES (%s, 'v', 'elsewhere', 1, 0, %s) "
                "ON CONFLICT (executor_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                (executor_id, engine.clock.now_ms()),
            )
            stop.wait(BEAT)

    beating = threading.Thread(target=other_host, daemon=True)
    beating.start()
    try:
        wait_for(lambda: engine.store.executor_holder(executor_id), 10, "the other holder")
        duplicate = make_engine(database_url, executor_id)
        started = time.monotonic()
        with pytest.raises(ExecutorIdInUse, match="elsewhere"):
            duplicate.launch()
        assert time.monotonic() - started < LEASE + 5
        assert not duplicate._launched
        holder = engine.store.executor_holder(executor_id)
        assert holder[0] == "elsewhere"  # untouched
    finally:
        stop.set()
        beating.join()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.parametrize(
    "url",
    [
        PG_URL.rsplit("/", 1)[0] + "/clock_no_such_database",
        PG_URL.replace("postgres@", "clock_no_such_role@"),
    ],
    ids=["database", "role"],
)
def test_a_missing_database_or_role_is_a_configuration_error(backend, url):
    started = time.monotonic()
    with pytest.raises(DatabaseConfigurationError, match="does not exist"):
        Engine(url).launch()
    assert time.monotonic() - started < 10


def test_no_lease_is_judged_before_a_lease_of_own_contact(database_url):
    """The adoption rule: after launch, and after a failed contact, an engine adopts nothing
    until it has been in contact with the database for a full lease itself."""
    started = time.monotonic()
    with make_engine(database_url) as engine:
        stale = orphan(engine, 5)  # its executor has no heartbeat at all
        assert engine.retrieve_workflow(stale).result(timeout=30) == 6
        assert time.monotonic() - started >= LEASE - 0.1
        assert engine.heartbeat.may_judge_others()

        engine.heartbeat.contact_lost()  # as after a failed heartbeat
        lost_at = time.monotonic()
        assert not engine.heartbeat.may_judge_others()
        stale = orphan(engine, 7)
        assert engine.retrieve_workflow(stale).result(timeout=30) == 8
        assert time.monotonic() - lost_at >= LEASE - 0.1
