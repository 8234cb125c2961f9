"""PostgreSQL documents gain their recency lexemes (see engines.recency_windows)."""

from django.db import migrations

SHIFTS = (14, 16, 18, 20, 22, 24, 26)


def add_lexemes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, key in (("search_messageentry", "message_id"), ("search_customerentry", "customer_id")):
        lexemes = ", ".join(f"'@{shift}:' || ({key} >> {shift})" for shift in SHIFTS)
        schema_editor.execute(
            f"UPDATE {table} SET document = document || array_to_tsvector(ARRAY[{lexemes}])"
        )


class Migration(migrations.Migration):
    dependencies = [("search", "0001_initial")]
    operations = [migrations.RunPython(add_lexemes, migrations.RunPython.noop)]
