# Indexes a composite index already serves, and FK indexes made partial (only rows that
# have a value): fewer index entries per stored message (docs/decisions.md).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _drop_index(table: str, column: str, name: str) -> migrations.RunSQL:
    return migrations.RunSQL(
        f'DROP INDEX IF EXISTS "{name}"',
        reverse_sql=f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}")',
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_invitation"),
        ("commerce", "0008_order_platform_updated_at"),
        ("conversations", "0004_live_list_indexes"),
        ("customers", "0002_merged_into_partial_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # The state changes; the database only loses the indexes (an AlterField would
        # rebuild each table on SQLite).
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="conversation",
                    name="assignee",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="assigned_conversations",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="conversation",
                    name="customer",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="conversations",
                        to="customers.customer",
                    ),
                ),
                migrations.AlterField(
                    model_name="conversation",
                    name="inbox",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="conversations",
                        to="conversations.inbox",
                    ),
                ),
                migrations.AlterField(
                    model_name="conversation",
                    name="merged_into",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="merged_from",
                        to="conversations.conversation",
                    ),
                ),
                migrations.AlterField(
                    model_name="conversation",
                    name="team",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="accounts.team",
                    ),
                ),
                migrations.AlterField(
                    model_name="conversationevent",
                    name="actor",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="conversationevent",
                    name="conversation",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="conversations.conversation",
                    ),
                ),
                migrations.AlterField(
                    model_name="conversationevent",
                    name="message",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="conversations.message",
                    ),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="author_agent",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="conversation",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="messages",
                        to="conversations.conversation",
                    ),
                ),
            ],
            database_operations=[
                _drop_index(
                    "conversations_conversation",
                    "assignee_id",
                    "conversations_conversation_assignee_id_e845f644",
                ),
                _drop_index(
                    "conversations_conversation",
                    "customer_id",
                    "conversations_conversation_customer_id_afb78c4a",
                ),
                _drop_index(
                    "conversations_conversation",
                    "inbox_id",
                    "conversations_conversation_inbox_id_c97f6da0",
                ),
                _drop_index(
                    "conversations_conversation",
                    "merged_into_id",
                    "conversations_conversation_merged_into_id_18d56788",
                ),
                _drop_index(
                    "conversations_conversation",
                    "team_id",
                    "conversations_conversation_team_id_c9f144f2",
                ),
                _drop_index(
                    "conversations_conversationevent",
                    "actor_id",
                    "conversations_conversationevent_actor_id_241d2db6",
                ),
                _drop_index(
                    "conversations_conversationevent",
                    "conversation_id",
                    "conversations_conversationevent_conversation_id_57114e51",
                ),
                _drop_index(
                    "conversations_conversationevent",
                    "message_id",
                    "conversations_conversationevent_message_id_9798fb91",
                ),
                _drop_index(
                    "conversations_message",
                    "author_agent_id",
                    "conversations_message_author_agent_id_eb3fb617",
                ),
                _drop_index(
                    "conversations_message",
                    "conversation_id",
                    "conversations_message_conversation_id_f1a2d5e9",
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                condition=models.Q(("team__isnull", False)), fields=["team"], name="conv_team"
            ),
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                condition=models.Q(("merged_into__isnull", False)),
                fields=["merged_into"],
                name="conv_merged_into",
            ),
        ),
        migrations.AddIndex(
            model_name="conversationevent",
            index=models.Index(
                condition=models.Q(("actor__isnull", False)), fields=["actor"], name="event_actor"
            ),
        ),
        migrations.AddIndex(
            model_name="conversationevent",
            index=models.Index(
                condition=models.Q(("message__isnull", False)),
                fields=["message"],
                name="event_message",
            ),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                condition=models.Q(("author_agent__isnull", False)),
                fields=["author_agent"],
                name="msg_author",
            ),
        ),
    ]
