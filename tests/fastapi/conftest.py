"""FastAPI fixtures: a test app on the parametrized system database, its app engine on the
same database (so starts can join the request's transaction), and an httpx client with the
lifespan running."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, HTTPException
from sqlalchemy import create_engine, text

from durable_core.store import parse_database_url
from fastapi_durable import Durable
from tests.waiting import wait_for

ADMIN_TOKEN = "s3cret"

APP_DDL = [
    "CREATE TABLE IF NOT EXISTS orders (id VARCHAR(200) PRIMARY KEY, note TEXT)",
]


def app_urls(database_url: str) -> tuple[str, str]:
    """(sync, async) SQLAlchemy URLs of the system database."""
    sync = parse_database_url(database_url).sqlalchemy
    if sync.startswith("sqlite"):
        return sync, sync.replace("sqlite://", "sqlite+aiosqlite://", 1)
    return sync, sync


def require_admin(authorization: str | None = Header(default=None)) -> None:
    if authorization != f"Bearer {ADMIN_TOKEN}":
        raise HTTPException(401, detail="admin token required")


@pytest.fixture
def sync_app_engine(database_url):
    engine = create_engine(app_urls(database_url)[0])
    with engine.begin() as conn:
        for ddl in APP_DDL:
            conn.execute(text(ddl))
    yield engine
    engine.dispose()


@pytest.fixture
async def async_app_engine(database_url, sync_app_engine):
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(app_urls(database_url)[1])
    yield engine
    await engine.dispose()


def make_durable(database_url: str, app_engine: Any) -> Durable:
    return Durable(
        database_url=database_url,
        app_engine=app_engine,
        suspend_threshold=0.5,
        shutdown_timeout=5,
    )


def make_app(durable: Durable, **router_options: Any) -> FastAPI:
    app = FastAPI(lifespan=durable.lifespan, exception_handlers=durable.exception_handlers)
    if not router_options:
        router_options = {"dependencies": [Depends(require_admin)]}
    app.include_router(durable.router(**router_options), prefix="/durable")
    return app


@contextlib.asynccontextmanager
async def running(app: FastAPI, durable: Durable) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan entered, and a client that talks to it in process."""
    async with durable.lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://test",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        ) as client:
            yield client


def count(engine: Any, sql: str, **params: Any) -> int:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    return functools.partial(wait_for, timeout=15)
