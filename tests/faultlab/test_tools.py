"""The fault tools do what they claim, against the throwaway cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from tests.crash.harness import REPO_ROOT, wait_for
from tests.faultlab.clockshift import ENV
from tests.faultlab.faults import connections_exhausted, frozen, table_locked, terminate_backends
from tests.faultlab.proxy import Proxy


@pytest.fixture
def proxy(fault_db):
    with Proxy(fault_db.cluster.port) as p:
        yield p


def connect(url: str, **kw) -> psycopg.Connection:
    return psycopg.connect(url, connect_timeout=5, **kw)


def test_proxy_forwards_queries_and_notifications(fault_db, proxy):
    with connect(fault_db.url_via(proxy.port), autocommit=True) as conn:
        assert conn.execute("SELECT %s::int + 1", (41,)).fetchone() == (42,)
        conn.execute("LISTEN faultlab")
        with connect(fault_db.url, autocommit=True) as other:
            other.execute("NOTIFY faultlab, 'hello'")
        note = next(conn.notifies(timeout=5))
        assert note.payload == "hello"
    assert proxy.stats.connections == 1


def test_lost_commit_reply_the_server_committed(fault_db, proxy):
    with connect(fault_db.url, autocommit=True) as admin:
        admin.execute("CREATE TABLE t (x int)")
    proxy.drop_replies(after=r"INSERT INTO t", count=1)
    conn = connect(fault_db.url_via(proxy.port))
    conn.execute("SELECT 1")
    conn.commit()  # not dropped: nothing matched yet
    conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(psycopg.OperationalError):
        conn.commit()
    conn.close()
    with connect(fault_db.url) as admin:
        assert admin.execute("SELECT x FROM t").fetchall() == [(1,)]  # it did commit
    assert proxy.stats.replies_dropped == 1
    # The rule is used up: the next transaction goes through.
    with connect(fault_db.url_via(proxy.port)) as conn:
        conn.execute("INSERT INTO t VALUES (2)")
        conn.commit()


def test_lost_reply_to_an_autocommit_statement(fault_db, proxy):
    with connect(fault_db.url, autocommit=True) as admin:
        admin.execute("CREATE TABLE t (x int)")
    proxy.drop_replies(after=r"INSERT INTO t", on=None)
    with connect(fault_db.url_via(proxy.port), autocommit=True) as conn:
        conn.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError):
            conn.execute("INSERT INTO t VALUES (%s)", (7,))
    with connect(fault_db.url) as admin:
        assert admin.execute("SELECT x FROM t").fetchall() == [(7,)]


def test_rolled_back_transaction_disarms_the_rule(fault_db, proxy):
    with connect(fault_db.url, autocommit=True) as admin:
        admin.execute("CREATE TABLE t (x int)")
    proxy.drop_replies(after=r"INSERT INTO t")
    with connect(fault_db.url_via(proxy.port)) as conn:
        conn.execute("INSERT INTO t VALUES (1)")
        conn.rollback()
        conn.execute("SELECT 1")
        conn.commit()  # an unrelated COMMIT keeps its reply
    assert proxy.stats.replies_dropped == 0


def test_cut_refuse_hold_delay(fault_db, proxy):
    url = fault_db.url_via(proxy.port)
    conn = connect(url, autocommit=True)
    assert proxy.cut_all() == 1
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()
    proxy.refuse()
    with pytest.raises(psycopg.OperationalError):
        connect(url)
    proxy.refuse(False)
    with connect(url, autocommit=True) as conn:
        done = threading.Event()
        with proxy.held():
            worker = threading.Thread(target=lambda: (conn.execute("SELECT 1"), done.set()))
            worker.start()
            assert not done.wait(0.5)  # a partition: the query neither fails nor returns
        assert done.wait(10)
        worker.join()
        proxy.delay = 0.3
        started = time.monotonic()
        conn.execute("SELECT 1")
        assert time.monotonic() - started >= 0.3


def test_clock_shift_moves_wall_time_only():
    code = "import time; print(time.time(), time.time_ns() / 1e9)"
    env = {**os.environ, ENV: "-3600", "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "tests.faultlab.clockshift", "-c", code],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=30,
    ).stdout.split()  # fmt: skip
    now = time.time()
    assert all(now - 3600 - 10 < float(t) < now - 3600 + 10 for t in out)


def test_frozen_stops_and_continues_a_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    def state() -> str:
        with open(f"/proc/{proc.pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]

    try:
        with frozen(proc.pid):
            wait_for(lambda: state() == "T", 5, "the process to stop")
        wait_for(lambda: state() != "T", 5, "the process to continue")
    finally:
        proc.kill()
        proc.wait()


def test_table_lock_blocks_others_until_released(fault_db):
    with connect(fault_db.url, autocommit=True) as admin:
        admin.execute("CREATE TABLE t (x int)")
        with table_locked(fault_db.url, "t"):
            admin.execute("SET lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                admin.execute("SELECT * FROM t")
        assert admin.execute("SELECT COUNT(*) FROM t").fetchone() == (0,)


def test_connections_exhausted_refuses_new_connections(fault_db):
    with connections_exhausted(fault_db.url) as held:
        assert len(held) >= 10
        with pytest.raises(psycopg.OperationalError, match="too many clients|connection slots"):
            connect(fault_db.url)
    with connect(fault_db.url) as conn:
        conn.execute("SELECT 1")


def test_terminate_backends(fault_db):
    victim = connect(fault_db.url, autocommit=True)
    with connect(fault_db.cluster.url(), autocommit=True) as admin:
        assert terminate_backends(admin, fault_db.name) == 1
    with pytest.raises(psycopg.OperationalError):
        victim.execute("SELECT 1")
    victim.close()
