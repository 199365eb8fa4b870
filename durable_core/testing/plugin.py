"""The pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:
    durable_engine: a launched ``TestEngine`` on a fresh database, the default engine for the
        test, shut down and removed afterwards. SQLite in a temporary directory unless
        ``--durable-database-url`` (or the ``durable_database_url`` ini option) names a
        PostgreSQL database, in which case each test gets a new schema in it. Parametrize it
        indirectly with URLs to run a test on several backends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .engine import TestEngine


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("durable", "durable workflows")
    group.addoption(
        "--durable-database-url",
        dest="durable_database_url",
        default=None,
        help="System database for the durable_engine fixture (default: SQLite in a temp dir; "
        "a postgresql:// URL gives each test a fresh schema there).",
    )
    parser.addini("durable_database_url", "Default for --durable-database-url.", default="")


def _database_url(request: pytest.FixtureRequest) -> str | None:
    param = getattr(request, "param", None)
    if param is not None:
        return None if param == "sqlite" else str(param)
    return (
        request.config.getoption("durable_database_url")
        or request.config.getini("durable_database_url")
        or os.environ.get("DURABLE_TEST_ENGINE_URL")
        or None
    )


@pytest.fixture
def durable_engine(request: pytest.FixtureRequest) -> Iterator[TestEngine]:
    """A launched test engine on a fresh database (see the module docstring)."""
    engine = TestEngine(_database_url(request))
    engine.launch()
    try:
        yield engine
    finally:
        engine.shutdown()
