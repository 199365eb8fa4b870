from django.db import migrations


def create_outputs_table(apps, schema_editor):
    """``@transaction(using=alias)`` writes its checkpoint in that alias's database, in the
    step's own transaction: every other database this app is migrated on gets the (small)
    transaction-output table. The DURABLE alias has it with the rest of the core schema."""
    from django_durable.conf import database_alias
    from durable_core.integration import TRANSACTION_OUTPUTS_DDL

    if schema_editor.connection.alias != database_alias():
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(TRANSACTION_OUTPUTS_DDL)


class Migration(migrations.Migration):
    dependencies = [("django_durable", "0008_ready_index")]

    operations = [migrations.RunPython(create_outputs_table, migrations.RunPython.noop)]
