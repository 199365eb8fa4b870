from django.db import migrations, models


def upgrade_core_schema(apps, schema_editor):
    """Core schema version 11 (the schedules table), on the DURABLE alias only. A no-op where
    an engine already migrated the database."""
    from django_durable.conf import database_alias
    from django_durable.schema import apply_core_schema

    if schema_editor.connection.alias == database_alias():
        apply_core_schema(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("django_durable", "0011_priority_ready_index")]

    operations = [
        migrations.RunPython(upgrade_core_schema, migrations.RunPython.noop),
        # The admin's unmanaged model over the table (Django never alters it).
        migrations.CreateModel(
            name="Schedule",
            fields=[
                ("schedule_id", models.TextField(primary_key=True, serialize=False)),
                ("workflow_name", models.TextField()),
                ("cron", models.TextField()),
                ("timezone", models.TextField(default="UTC")),
                ("inputs", models.TextField(blank=True, null=True)),
                ("queue_name", models.TextField(blank=True, null=True)),
                ("catchup", models.TextField(default="latest")),
                ("max_catchup", models.IntegerField(default=100)),
                ("overlap", models.TextField(default="skip")),
                ("paused", models.BooleanField(default=False)),
                ("source", models.TextField(default="api")),
                ("last_tick", models.BigIntegerField(blank=True, null=True)),
                ("last_workflow_id", models.TextField(blank=True, null=True)),
                ("created_at", models.BigIntegerField()),
                ("updated_at", models.BigIntegerField()),
            ],
            options={
                "db_table": "durable_schedules",
                "ordering": ["schedule_id"],
                "managed": False,
            },
        ),
    ]
