# Only merged-away customers need an index entry for merged_into.

import django.db.models.deletion
from django.db import migrations, models


def _drop_index(table: str, column: str, name: str) -> migrations.RunSQL:
    return migrations.RunSQL(
        f'DROP INDEX IF EXISTS "{name}"',
        reverse_sql=f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}")',
    )


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0001_initial"),
    ]

    operations = [
        # The state changes; the database only loses the indexes (an AlterField would
        # rebuild each table on SQLite).
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="customer",
                    name="merged_into",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="merged_from",
                        to="customers.customer",
                    ),
                ),
            ],
            database_operations=[
                _drop_index(
                    "customers_customer",
                    "merged_into_id",
                    "customers_customer_merged_into_id_2994ddb6",
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="customer",
            index=models.Index(
                condition=models.Q(("merged_into__isnull", False)),
                fields=["merged_into"],
                name="customer_merged_into",
            ),
        ),
    ]
