from django.db import migrations, models


def upgrade_core_schema(apps, schema_editor):
    """Core schema version 4 (durable_transaction_outputs created by migration, with TEXT IDs
    like every other table; NOTIFY channel per schema), on the DURABLE alias only.

    The core's migrate() applies whatever versions are missing, so this is a no-op on a
    database that an earlier migration (or an engine) already brought to the current version."""
    from django_durable.conf import database_alias
    from django_durable.schema import apply_core_schema

    if schema_editor.connection.alias == database_alias():
        apply_core_schema(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("django_durable", "0003_consumed_messages")]

    operations = [
        migrations.RunPython(upgrade_core_schema, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="transactionoutput",
            name="workflow_id",
            field=models.TextField(),
        ),
    ]
