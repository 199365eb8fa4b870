"""Shared fixtures: every durable behaviour runs on SQLite and on PostgreSQL.

PostgreSQL tests get a fresh schema each (through ``search_path`` in the URL) in the database
named by ``DURABLE_TEST_DATABASE_URL`` (default: the local ``test`` database). A PostgreSQL
that cannot be reached is a test failure, not a skip.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import pytest

from tests import processes

# Installed packages register it through the pytest11 entry point; this covers a checkout
# whose installed metadata predates the entry point.
pytest_plugins = ["durable_core.testing.plugin"]

PG_URL = os.environ.get("DURABLE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgres"]


def _pg_admin():
    import psycopg

    return psycopg.connect(PG_URL, autocommit=True)


def make_postgres_url() -> tuple[str, str]:
    """A URL whose connections see only a new, empty schema. Returns (url, schema)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}", schema


def drop_postgres_schema(schema: str) -> None:
    with _pg_admin() as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(autouse=True)
def _no_spawned_process_outlives_its_test():
    """Kill the process groups a test started with ``tests.processes.spawn`` and left running
    (a failure or a Ctrl-C before its own cleanup)."""
    before = processes.spawned()
    yield
    processes.kill_all(processes.spawned() - before)


def xdist_group(item: pytest.Item) -> str:
    """The unit of work ``pytest -n N --dist loadgroup`` keeps on one worker: a test module,
    split by parameters (``[sqlite]``, ``[postgres]``, ...). A module's tests with the same
    parameters run in order on one worker: they may share module-scoped fixtures (such as a
    seeded server, built once per backend). Differently parametrized tests share nothing but
    session fixtures, which every worker builds for itself (each its own database, server or
    throwaway cluster), so two workers may run them at once. A test's own ``xdist_group``
    mark wins over this one.

    One exception: the tests that run fleets of worker processes on the shared PostgreSQL
    server (the ``fleet`` fixture, tests/multiprocess) take one group, run one at a time: three
    default workers open up to ~50 connections, and the server has max_connections=100."""
    module = item.nodeid.split("::", 1)[0]
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    fleet = "fleet" in getattr(item, "fixturenames", ()) or module.startswith("tests/multiprocess/")
    if fleet and "sqlite" not in params:
        return "postgres-fleets"
    return f"{module}[{callspec.id}]" if callspec is not None else module


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(xdist_group(item)))


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def database_url(backend, tmp_path):
    """A fresh, empty system database on the parametrized backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'durable.sqlite3'}"
        return
    url, schema = make_postgres_url()
    yield url
    drop_postgres_schema(schema)


@pytest.fixture
def engine(database_url):
    """A launched engine on a fresh database, shut down after the test."""
    from durable_core import Engine, set_default_engine

    # Schedulers stay off: a test module's @scheduled workflow must not tick in other tests.
    eng = Engine(
        database_url,
        executor_id=f"test-{uuid.uuid4().hex[:8]}",
        suspend_threshold=0.5,
        run_scheduler=False,
    )
    eng.launch()
    set_default_engine(eng)
    yield eng
    eng.shutdown(timeout=5)
    set_default_engine(None)
