"""Migrations create the core schema; the unmanaged models match it; no pending migrations."""

from __future__ import annotations

import uuid

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection, connections

from django_durable.schema import apply_core_schema, drop_core_schema
from durable_core.store.schema import CURRENT_VERSION


def test_models_match_the_tables(transactional_db):
    models = apps.get_app_config("django_durable").get_models()
    tables = set(connection.introspection.table_names())
    checked = 0
    for model in models:
        table = model._meta.db_table
        assert table in tables, f"{table} was not created by the migration"
        with connection.cursor() as cursor:
            columns = {
                c.name for c in connection.introspection.get_table_description(cursor, table)
            }
        fields = {f.column for f in model._meta.concrete_fields if f.column}
        assert fields == columns, f"{model.__name__} fields differ from {table}"
        checked += 1
    assert checked == 9


def test_migration_writes_the_schema_version_the_engine_expects(transactional_db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT MAX(version) FROM durable_schema")
        assert cursor.fetchone()[0] == CURRENT_VERSION


def test_engine_launch_finds_schema_current(web_engine):
    assert web_engine.store.schema_version() == CURRENT_VERSION
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM durable_schema")
        # one row per version, all written by the migrations: the engine applied nothing more
        assert cursor.fetchone()[0] == CURRENT_VERSION


def test_makemigrations_check_is_clean(transactional_db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.fixture
def fresh_connection(transactional_db, tmp_path):
    """A Django connection to an empty database of its own (a SQLite file; a new schema of
    the PostgreSQL test database), so dropping the core schema leaves the engines' alone."""
    settings_dict = {**connection.settings_dict}
    schema = f"hygiene_{uuid.uuid4().hex[:10]}"
    if connection.vendor == "sqlite":
        settings_dict["NAME"] = str(tmp_path / "fresh.sqlite3")
    else:
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{schema}"')
        options = {**settings_dict.get("OPTIONS", {}), "options": f"-csearch_path={schema}"}
        settings_dict["OPTIONS"] = options
    fresh = type(connections[connection.alias])(settings_dict, alias="fresh")
    yield fresh
    fresh.close()
    if connection.vendor != "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _core_objects(conn) -> set[str]:
    names = {t for t in conn.introspection.table_names() if t.startswith("durable_")}
    if conn.vendor == "postgresql":
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = current_schema()"
            )
            names |= {f"{row[0]}()" for row in cursor.fetchall()}
    return names


def test_reverse_migration_drops_the_whole_core_schema_and_migrating_again_works(
    fresh_connection,
):
    """``migrate django_durable zero`` runs ``drop_core_schema``: it used to leave
    durable_request_keys behind (its own table list had drifted from the core's), so the
    next ``migrate`` failed creating it again."""
    assert apply_core_schema(fresh_connection) == CURRENT_VERSION
    assert "durable_request_keys" in _core_objects(fresh_connection)
    drop_core_schema(fresh_connection)
    assert _core_objects(fresh_connection) == set()
    assert apply_core_schema(fresh_connection) == CURRENT_VERSION
    assert "durable_schedules" in _core_objects(fresh_connection)
