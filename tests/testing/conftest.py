"""The test toolkit's own tests run each behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from durable_core.testing import TestEngine
from tests.conftest import PG_URL


@pytest.fixture
def test_engine_url(backend) -> str | None:
    return None if backend == "sqlite" else PG_URL


@pytest.fixture
def tengine(test_engine_url):
    """A launched TestEngine on the parametrized backend (a fresh schema on PostgreSQL)."""
    engine = TestEngine(test_engine_url, schema_prefix="testing_")
    engine.launch()
    yield engine
    engine.shutdown()
