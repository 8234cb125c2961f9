"""PostgreSQL: cap the GIN pending list of the search indexes (see engines.GIN_PENDING_LIST_KB)."""

from django.db import migrations


def set_limit(apps, schema_editor):
    from kefu.search.engines import GIN_PENDING_LIST_KB, PostgresEngine

    if schema_editor.connection.vendor != "postgresql":
        return
    for name in (PostgresEngine.MESSAGE_INDEX, PostgresEngine.CUSTOMER_INDEX):
        schema_editor.execute(
            f"ALTER INDEX IF EXISTS {name} SET (gin_pending_list_limit = {GIN_PENDING_LIST_KB})"
        )


def reset_limit(apps, schema_editor):
    from kefu.search.engines import PostgresEngine

    if schema_editor.connection.vendor != "postgresql":
        return
    for name in (PostgresEngine.MESSAGE_INDEX, PostgresEngine.CUSTOMER_INDEX):
        schema_editor.execute(f"ALTER INDEX IF EXISTS {name} RESET (gin_pending_list_limit)")


class Migration(migrations.Migration):
    dependencies = [("search", "0003_inbox_lexemes")]
    operations = [migrations.RunPython(set_limit, reset_limit)]
