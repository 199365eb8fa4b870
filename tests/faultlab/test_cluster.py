"""The throwaway cluster itself: it is not the machine's server, it stops and starts in both
modes, and it is removed afterwards."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import PG_URL
from tests.faultlab.cluster import Cluster, reap_orphans


def test_fault_db_is_a_server_of_its_own(fault_db):
    with psycopg.connect(fault_db.url) as conn:
        (port,) = conn.execute("SHOW port").fetchone()
        (datadir,) = conn.execute("SHOW data_directory").fetchone()
    assert int(port) == fault_db.cluster.port
    assert datadir.startswith(str(fault_db.cluster.root))
    with psycopg.connect(PG_URL) as conn:
        (shared_datadir,) = conn.execute("SHOW data_directory").fetchone()
    assert shared_datadir != datadir


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_stop_and_start(fault_db, mode):
    with psycopg.connect(fault_db.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
    fault_db.cluster.stop(mode)
    assert not fault_db.cluster.is_up()
    fault_db.cluster.start()
    with psycopg.connect(fault_db.url) as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]  # committed data survives


def test_down_restarts_even_when_the_block_fails(fault_db):
    with pytest.raises(ZeroDivisionError), fault_db.cluster.down("immediate"):
        1 / 0  # noqa: B018
    assert fault_db.cluster.is_up()


def test_destroy_removes_everything_and_reap_spares_live_owners(fault_cluster):
    cluster = Cluster()
    cluster.start()
    assert cluster.server_pid() is not None
    assert str(cluster.root) not in reap_orphans()  # owned by this live process
    cluster.destroy()
    assert not cluster.root.exists()
    assert fault_cluster.is_up()  # the session's cluster is another one
