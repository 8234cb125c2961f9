"""SQLite: new index rows reach FTS5 from the engine, not from an insert trigger.

A trigger's statement savepoint made FTS5 write one segment per row (see
engines.SqliteEngine.insert_new_messages); the update and delete triggers stay.
"""

from django.db import migrations

TABLES = (
    ("search_message_fts", "search_messageentry", "message_id"),
    ("search_customer_fts", "search_customerentry", "customer_id"),
)


def drop_insert_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for _, table, _ in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_ai")


def restore_insert_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for fts, table, key in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER IF NOT EXISTS {table}_ai AFTER INSERT ON {table} BEGIN "
            f"INSERT INTO {fts}(rowid, document) VALUES (new.{key}, new.document); END"
        )


class Migration(migrations.Migration):
    dependencies = [("search", "0004_gin_pending_list_limit")]
    operations = [migrations.RunPython(drop_insert_triggers, restore_insert_triggers)]
