from django.db import migrations, models


def upgrade_core_schema(apps, schema_editor):
    """Core schema version 13 (the steps' ``attempts`` column), on the DURABLE alias only. A
    no-op where an engine already migrated the database."""
    from django_durable.conf import database_alias
    from django_durable.schema import apply_core_schema

    if schema_editor.connection.alias == database_alias():
        apply_core_schema(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("django_durable", "0013_partitions")]

    operations = [
        migrations.RunPython(upgrade_core_schema, migrations.RunPython.noop),
        # The admin's unmanaged model over the column (Django never alters the table).
        migrations.AddField(
            model_name="step", name="attempts", field=models.IntegerField(default=1)
        ),
    ]
