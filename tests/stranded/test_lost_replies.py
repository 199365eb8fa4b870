"""Lost replies: the server committed, the engine never heard. A live worker must pick the
work up again promptly, without a restart, and write nothing twice.

Each test puts the fault lab's proxy between the engine and a throwaway PostgreSQL cluster
and loses the reply to one COMMIT of the statement named.
"""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest

from durable_core import Engine, Queue, recv, set_event, step, workflow, write_stream
from tests.defaults import as_default
from tests.faultlab.proxy import Proxy

lost_reply_queue = Queue("lost_reply_queue")

# A FIFO queue without limits is claimed in one autocommit statement (its reply is the one
# lost); the transactional claim (limits, priorities) is covered by the chaos runs.
QUEUE_CLAIM = (
    r"SET status = 'PENDING', executor_id = \$\d+, run_token = \$\d+ \|\| w\.workflow_id, "
    r"started_at.*FROM picked"
)
RECOVERY_CLAIM = r"recovery_attempts = recovery_attempts \+ 1"


@step
def double(x: int) -> int:
    return 2 * x


@workflow
def doubles(x: int) -> int:
    return double(x)


@workflow
def waits_then_doubles(x: int) -> int:
    recv("go", timeout=60)
    return double(x)


@workflow
def publishes(value: str) -> str:
    set_event("state", value)
    write_stream("progress", value)
    return value


@pytest.fixture
def proxy(fault_db):
    with Proxy(fault_db.cluster.port) as p:
        yield p


def engine_via(proxy: Proxy, fault_db, **options) -> Engine:
    return Engine(
        fault_db.url_via(proxy.port),
        executor_id=options.pop("executor_id", f"lost-{uuid.uuid4().hex[:8]}"),
        run_scheduler=False,
        **options,
    )


def test_lost_reply_to_a_queue_claim(fault_db, proxy):
    """The claim committed (rows PENDING here), its reply was lost: its retry recognises the
    rows by the claim's token and runs them, well before any sweep or lease."""
    engine = engine_via(proxy, fault_db, heartbeat_seconds=20, lease_seconds=60)
    with engine, as_default(engine):  # the queue enqueues on the default engine
        proxy.drop_replies(after=QUEUE_CLAIM, on=None, count=1)
        started = time.monotonic()
        handles = [lost_reply_queue.enqueue(doubles, i) for i in range(4)]
        assert [h.result(timeout=15) for h in handles] == [0, 2, 4, 6]
        elapsed = time.monotonic() - started
    assert proxy.stats.replies_dropped == 1
    assert elapsed < 10  # the retry, not the 20 s sweep
    with psycopg.connect(fault_db.url) as conn:
        runs = conn.execute(
            "SELECT COUNT(*) FROM durable_steps WHERE name LIKE %s", ("%double",)
        ).fetchone()[0]
    assert runs == 4


def test_lost_reply_to_a_recovery_claim(fault_db, proxy):
    """A retried recovery claim finds its own run token instead of failing its
    compare-and-swap and stranding the workflow."""
    executor_id = f"lost-{uuid.uuid4().hex[:8]}"
    first = Engine(fault_db.url, executor_id=executor_id, run_scheduler=False).launch()
    handle = first.start_workflow(waits_then_doubles, 21)
    deadline = time.monotonic() + 10
    while not first.list_steps(handle.workflow_id) and time.monotonic() < deadline:
        time.sleep(0.05)  # the recv's deadline mark is recorded: it is waiting
    first.shutdown(timeout=0)  # leaves it PENDING under this executor, as a crash would

    proxy.drop_replies(after=RECOVERY_CLAIM, count=1)
    second = engine_via(
        proxy, fault_db, executor_id=executor_id, heartbeat_seconds=20, lease_seconds=60
    )
    with second:
        second.send(handle.workflow_id, "now", topic="go")
        assert second.retrieve_workflow(handle.workflow_id).result(timeout=15) == 42
    assert proxy.stats.replies_dropped == 1


@pytest.mark.parametrize(
    "statement", ["INSERT INTO durable_event_history", "INSERT INTO durable_streams"]
)
def test_lost_reply_to_a_set_event_or_stream_write(fault_db, proxy, statement):
    """The retried transaction finds its own checkpoint: no raw UniqueViolation reaches the
    workflow, and the value is stored once."""
    engine = engine_via(proxy, fault_db)
    with engine:
        proxy.drop_replies(after=statement, count=1)
        handle = engine.start_workflow(publishes, "v1")
        assert handle.result(timeout=15) == "v1"
        assert handle.status().status == "SUCCESS"
    assert proxy.stats.replies_dropped == 1
    with psycopg.connect(fault_db.url) as conn:
        history = conn.execute(
            "SELECT COUNT(*) FROM durable_event_history WHERE workflow_id = %s",
            (handle.workflow_id,),
        ).fetchone()[0]
        stream = conn.execute(
            "SELECT COUNT(*) FROM durable_streams WHERE workflow_id = %s", (handle.workflow_id,)
        ).fetchone()[0]
    assert (history, stream) == (1, 1)
