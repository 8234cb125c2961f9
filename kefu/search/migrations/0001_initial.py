import django.db.models.deletion
from django.db import migrations, models

import kefu.search.models


def install(apps, schema_editor):
    from kefu.search.engines import engine_for

    engine_for(schema_editor.connection).install(schema_editor.connection)


def uninstall(apps, schema_editor):
    from kefu.search.engines import engine_for

    engine_for(schema_editor.connection).uninstall(schema_editor.connection)


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("conversations", "0001_initial"),
        ("customers", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="MessageEntry",
            fields=[
                (
                    "message",
                    kefu.search.models.RowIdOneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="conversations.message",
                    ),
                ),
                ("conversation_id", models.BigIntegerField(db_index=True)),
                ("inbox_id", models.BigIntegerField()),
                ("sent_at", models.DateTimeField()),
                ("document", kefu.search.models.DocumentField()),
            ],
            options={"db_table": "search_messageentry"},
        ),
        migrations.CreateModel(
            name="CustomerEntry",
            fields=[
                (
                    "customer",
                    kefu.search.models.RowIdOneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="customers.customer",
                    ),
                ),
                ("document", kefu.search.models.DocumentField()),
                ("source_updated_at", models.DateTimeField()),
            ],
            options={"db_table": "search_customerentry"},
        ),
        migrations.RunPython(install, uninstall),
    ]
