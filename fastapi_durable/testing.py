"""Test a FastAPI app's workflows with the test toolkit: the app's ``Durable`` runs a
``durable_core.testing.TestEngine`` (fresh database, queues served in the test's process,
virtual time, crash injection), launched by the app's own lifespan.

    from fastapi.testclient import TestClient
    from fastapi_durable.testing import use_test_engine

    def test_order(tmp_path):
        with use_test_engine(durable) as engine, TestClient(app) as client:
            client.post("/orders", json={...})
            engine.run_until_idle()

With ``httpx.AsyncClient(transport=httpx.ASGITransport(app))`` (which does not run the
lifespan), enter ``async with durable.lifespan(app):`` inside the ``use_test_engine`` block.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

from durable_core import Engine
from durable_core.testing import TestEngine, fresh_database

from ._durable import Durable


@contextlib.contextmanager
def use_test_engine(
    durable: Durable,
    database_url: str | None = None,
    *,
    app_engine: Any = None,
    fresh: bool = True,
    **options: Any,
) -> Iterator[TestEngine]:
    """For the duration, ``durable`` builds a ``TestEngine``: on a fresh database (SQLite in
    a temporary directory, or a new schema in the PostgreSQL ``database_url``; ``fresh=False``
    uses ``database_url`` as it is), with ``app_engine`` (default: one on that database) for
    ``SessionDep`` and ``@transaction``. Yields the engine the app's lifespan will launch.
    Other keyword arguments go to ``TestEngine`` (``clock=``, ``schedules=``, ...)."""
    previous = (durable.database_url, durable.app_engine)
    url, cleanup = fresh_database(database_url) if fresh else (database_url, None)
    try:
        factory = functools.partial(TestEngine, fresh_schema=False, **options)
        engine = durable.use_engine(factory, url or durable.database_url, app_engine)
        assert isinstance(engine, TestEngine)
        yield engine
    finally:
        if durable.engine.launched:
            durable.engine.shutdown()
        durable.use_engine(Engine, *previous)
        if cleanup is not None:
            cleanup()
