from django.db import migrations


def upgrade_core_schema(apps, schema_editor):
    """Core schema version 15 (fewer index entries per queued workflow: a PENDING-only queue
    index, a started-only rate limit index), on the DURABLE alias only. A no-op where an
    engine already migrated it."""
    from django_durable.conf import database_alias
    from django_durable.schema import apply_core_schema

    if schema_editor.connection.alias == database_alias():
        apply_core_schema(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("django_durable", "0015_claim_notifications")]

    operations = [migrations.RunPython(upgrade_core_schema, migrations.RunPython.noop)]
