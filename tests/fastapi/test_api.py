"""The public names of fastapi_durable (API.md) stay exported."""

import fastapi_durable


def test_exported_names():
    assert set(fastapi_durable.__all__) >= {"Durable"}
    for name in fastapi_durable.__all__:
        assert hasattr(fastapi_durable, name), name
    assert {"lifespan", "router", "EngineDep", "SessionDep", "IdempotencyKeyDep"} <= set(
        dir(fastapi_durable.Durable(database_url="sqlite:///unused-api-check.sqlite3"))
    )
