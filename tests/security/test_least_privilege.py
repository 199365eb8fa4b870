"""A runtime role with DML rights only (SELECT, INSERT, UPDATE, DELETE, sequence USAGE) on a
migrated PostgreSQL schema launches an Engine and runs workflows: steps, @transaction steps
(on the system database and on a separate application database), queues, messages."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import pytest

from durable_core import Engine, Queue, recv, send, step, transaction, workflow
from durable_core.errors import SchemaVersionError
from tests.cli.conftest import run_cli
from tests.conftest import _pg_admin, drop_postgres_schema, make_postgres_url
from tests.defaults import as_default

dml_queue = Queue("least-privilege")


@step
def double(x: int) -> int:
    return 2 * x


@transaction
def record(x: int) -> int:
    return x + 1


@workflow
def dml_flow(x: int) -> int:
    send("dml-receiver", x, topic="t")
    return record(double(x))


@workflow
def dml_receiver() -> int:
    return recv(topic="t", timeout=30)


def _grant_dml(schema: str, role: str) -> None:
    with _pg_admin() as conn:
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        conn.execute(
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"'
        )
        conn.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"')


def _as_role(url: str, role: str) -> str:
    assert url.startswith("postgresql://postgres@")
    return url.replace("postgresql://postgres@", f"postgresql://{quote(role)}@", 1)


@pytest.fixture
def dml_role():
    role = f"schema_dml_{uuid.uuid4().hex[:8]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    yield role
    with _pg_admin() as conn:
        conn.execute(f'DROP OWNED BY "{role}"')
        conn.execute(f'DROP ROLE "{role}"')


@pytest.fixture
def schemas():
    made = [make_postgres_url() for _ in range(2)]
    yield [url for url, _ in made], [schema for _, schema in made]
    for _, schema in made:
        drop_postgres_schema(schema)


def test_a_dml_only_role_runs_the_fleet_on_a_migrated_database(dml_role, schemas):
    (system_url, app_url), (system_schema, app_schema) = schemas
    result = run_cli(system_url, "migrate", "--app-database", app_url)
    assert result.exit_code == 0, result.output
    _grant_dml(system_schema, dml_role)
    _grant_dml(app_schema, dml_role)
    # The role cannot create anything: a launch that ran DDL would fail here.
    with _pg_admin() as conn:
        assert not conn.execute(
            "SELECT has_schema_privilege(%s, %s, 'CREATE')", (dml_role, system_schema)
        ).fetchone()[0]
    for app_database in (None, _as_role(app_url, dml_role)):
        with Engine(
            _as_role(system_url, dml_role),
            app_database=app_database,
            executor_id=f"dml-{uuid.uuid4().hex[:6]}",
            run_scheduler=False,
        ) as engine:
            receiver = engine.start_workflow(dml_receiver, workflow_id="dml-receiver")
            assert engine.start_workflow(dml_flow, 5).result(timeout=30) == 11
            # The queue enqueues on the default engine, which another test in this process
            # (a Django one, say) may have left set: make it this one.
            with as_default(engine):
                assert dml_queue.enqueue(dml_flow, 7).result(timeout=30) == 15
            assert receiver.result(timeout=30) == 5


def test_a_dml_only_role_gets_a_clear_error_on_an_unmigrated_database(dml_role, schemas):
    (system_url, _), (system_schema, _) = schemas
    _grant_dml(system_schema, dml_role)
    with pytest.raises(SchemaVersionError, match="durable migrate"):
        Engine(_as_role(system_url, dml_role), migrate=False, run_scheduler=False).launch()
