"""Migrations create the core schema; the unmanaged models match it; no pending migrations."""

from __future__ import annotations

from django.apps import apps
from django.core.management import call_command
from django.db import connection

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
