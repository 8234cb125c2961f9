"""PostgreSQL message documents gain their inbox lexeme (see engines.inbox_lexeme)."""

from django.db import migrations


def add_lexemes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "UPDATE search_messageentry SET document = ts_delete(document, '#i:' || inbox_id) "
        "|| array_to_tsvector(ARRAY['#i:' || inbox_id])"
    )


class Migration(migrations.Migration):
    dependencies = [("search", "0002_recency_lexemes")]
    operations = [migrations.RunPython(add_lexemes, migrations.RunPython.noop)]
