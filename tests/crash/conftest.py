"""Fixtures for tests that run real worker processes."""

from __future__ import annotations

import pytest

from durable_core import Client
from tests.crash.harness import Fleet


@pytest.fixture
def fleet(tmp_path, database_url):
    """Worker processes on the test's database; any still alive are killed afterwards."""
    f = Fleet(tmp_path, database_url)
    yield f
    f.stop_all()


@pytest.fixture
def client(database_url, fleet):
    """A Client for inspection and enqueueing (the schema must exist: launch a worker first)."""
    clients: list[Client] = []

    def make() -> Client:
        c = Client(database_url)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()
