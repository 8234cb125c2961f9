"""Message entries lose their conversation_id index; SQLite's FTS5 tables merge segments in
eights (automerge 8).

Both make writing a received message's entry cheaper, and that write sits inside the storing
transaction (SQLite: under its single write lock). Measured with 500-row batches over 200,000
entries: the index cost 11-14 µs a row (its keys arrive in random order) and FTS5's default
automerge of 4 another ~10 (docs/search.md, "Cheaper entries"). The index served only merges
and erasure, which find the entries through their messages instead (index.resync_conversations).
"""

from django.db import migrations, models

INDEX = "search_messageentry_conversation_id_56ee4523"
FTS_TABLES = ("search_message_fts", "search_customer_fts")


def set_automerge(value):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "sqlite":
            return
        for fts in FTS_TABLES:
            # A schema left uninstalled (an interrupted reindex) gets the setting when
            # `kefu search reindex` re-creates it (engines._sqlite_schema).
            with schema_editor.connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM sqlite_master WHERE name = %s", [fts])
                if cursor.fetchone() is None:
                    continue
            schema_editor.execute(f"INSERT INTO {fts}({fts}, rank) VALUES ('automerge', {value})")

    return run


class Migration(migrations.Migration):
    dependencies = [("search", "0005_sqlite_insert_without_trigger")]
    operations = [
        # The state changes; the database only loses the index (an AlterField would rebuild
        # the table on SQLite, dropping the FTS5 triggers with it).
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="messageentry",
                    name="conversation_id",
                    field=models.BigIntegerField(),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{INDEX}"',
                    reverse_sql=(
                        f'CREATE INDEX IF NOT EXISTS "{INDEX}" '
                        'ON "search_messageentry" ("conversation_id")'
                    ),
                ),
            ],
        ),
        migrations.RunPython(set_automerge(8), set_automerge(4)),
    ]
