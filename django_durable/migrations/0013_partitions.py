from django.db import migrations, models


def upgrade_core_schema(apps, schema_editor):
    """Core schema version 12 (partition and debounce keys on workflows, their partial
    indexes), on the DURABLE alias only. A no-op where an engine already migrated the database."""
    from django_durable.conf import database_alias
    from django_durable.schema import apply_core_schema

    if schema_editor.connection.alias == database_alias():
        apply_core_schema(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("django_durable", "0012_schedules")]

    operations = [
        migrations.RunPython(upgrade_core_schema, migrations.RunPython.noop),
        migrations.AddField(
            model_name="workflow",
            name="partition_key",
            field=models.TextField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="workflow",
            name="debounce_key",
            field=models.TextField(blank=True, null=True),
        ),
    ]
