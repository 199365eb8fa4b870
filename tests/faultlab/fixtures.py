"""Pytest fixtures over :mod:`tests.faultlab.cluster`: one disposable PostgreSQL cluster per
test session (initdb costs seconds), a fresh database in it per test.

Import them into a test folder's ``conftest.py``::

    from tests.faultlab.fixtures import fault_cluster, fault_db  # noqa: F401
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.faultlab.cluster import Cluster, reap_orphans


@dataclass(frozen=True)
class FaultDB:
    """A database of its own on the throwaway cluster."""

    cluster: Cluster
    name: str

    @property
    def url(self) -> str:
        return self.cluster.url(self.name)

    def url_via(self, port: int) -> str:
        """The same database reached through something listening on ``port`` (a proxy)."""
        return self.cluster.url(self.name, port=port)


@pytest.fixture(scope="session")
def fault_cluster() -> Iterator[Cluster]:
    """The session's throwaway PostgreSQL server; removed at the end of the session, also
    when tests failed."""
    reap_orphans()
    cluster = Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def fault_db(fault_cluster: Cluster) -> Iterator[FaultDB]:
    """A new database on the throwaway cluster. The cluster is running when the test starts
    and is started again afterwards if the test left it stopped."""
    fault_cluster.start()
    name = f"faultlab_{uuid.uuid4().hex[:12]}"
    fault_cluster.create_database(name)
    try:
        yield FaultDB(fault_cluster, name)
    finally:
        fault_cluster.start()
        fault_cluster.drop_database(name)
