from django.db import migrations


def upgrade_core_schema(apps, schema_editor):
    """Core schema version 9 (durable_queue_settings: queues paused and limited at run time),
    on the DURABLE alias only. A no-op where an engine already migrated the database."""
    from django_durable.conf import database_alias
    from django_durable.schema import apply_core_schema

    if schema_editor.connection.alias == database_alias():
        apply_core_schema(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("django_durable", "0009_transaction_outputs_on_other_aliases")]

    operations = [
        migrations.RunPython(upgrade_core_schema, migrations.RunPython.noop),
        migrations.AlterModelOptions(
            name="workflow",
            options={
                "managed": False,
                "ordering": ["-created_at"],
                "permissions": [
                    ("cancel_workflow", "Can cancel workflows"),
                    ("resume_workflow", "Can resume workflows"),
                    ("fork_workflow", "Can fork workflows"),
                    ("manage_queues", "Can pause, resume and limit queues"),
                ],
            },
        ),
    ]
