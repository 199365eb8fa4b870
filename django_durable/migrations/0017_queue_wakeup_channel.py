from django.db import migrations


def upgrade_core_schema(apps, schema_editor):
    """Core schema version 16 (PostgreSQL: queue wake-ups on a channel of their own, heard
    only by processes that serve queues), on the DURABLE alias only. A no-op where an engine
    already migrated it."""
    from django_durable.conf import database_alias
    from django_durable.schema import apply_core_schema

    if schema_editor.connection.alias == database_alias():
        apply_core_schema(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("django_durable", "0016_fewer_queue_index_entries")]

    operations = [migrations.RunPython(upgrade_core_schema, migrations.RunPython.noop)]
