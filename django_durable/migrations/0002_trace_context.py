from django.db import migrations, models


def upgrade_core_schema(apps, schema_editor):
    """Core schema version 2 (durable_workflows.trace_context), on the DURABLE alias only.

    The core's migrate() applies whatever versions are missing, so this is a no-op on a
    database that 0001 (or an engine) already brought to the current version."""
    from django_durable.conf import database_alias
    from django_durable.schema import apply_core_schema

    if schema_editor.connection.alias == database_alias():
        apply_core_schema(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("django_durable", "0001_initial")]

    operations = [
        migrations.RunPython(upgrade_core_schema, migrations.RunPython.noop),
        migrations.AddField(
            model_name="workflow",
            name="trace_context",
            field=models.TextField(blank=True, null=True),
        ),
    ]
