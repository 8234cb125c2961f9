"""The search index: one row per searchable message and per customer.

Rows are written by :mod:`kefu.search.index` only, in step with the domain writes (see
docs/search.md). ``document`` holds the analyzed terms in the engine's own form: on SQLite a
space-separated term list that an FTS5 table indexes (external content, kept in step by
triggers), on PostgreSQL a ``tsvector`` under a GIN index.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class DocumentField(models.Field):
    """Analyzed terms: ``text`` on SQLite, ``tsvector`` on PostgreSQL.

    The value is the engine's encoding, built by ``kefu.search.engines`` (never raw user text).
    """

    description = "search document"

    def db_type(self, connection: Any) -> str:
        return "tsvector" if connection.vendor == "postgresql" else "text"

    def get_placeholder(self, value: Any, compiler: Any, connection: Any) -> str:
        return "%s::tsvector" if connection.vendor == "postgresql" else "%s"


class RowIdOneToOneField(models.OneToOneField):
    """A one-to-one primary key that is SQLite's rowid (``integer``, not ``bigint``).

    FTS5 addresses its external content by rowid: with the key as the rowid, joining a match to
    its entry is one B-tree lookup instead of two (an extra index on the key and the table).
    """

    def db_type(self, connection: Any) -> str | None:
        if connection.vendor == "sqlite":
            return "integer"
        return super().db_type(connection)


class MessageEntry(models.Model):
    """A message's terms, with what scoping and filtering need without touching the message.

    ``conversation_id`` and ``inbox_id`` are the message's *current* conversation and that
    conversation's inbox: merges move messages, and the index follows (see index.resync).
    """

    message = RowIdOneToOneField(
        "conversations.Message", primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    # Not indexed: merges and erasure find entries through their messages (an entry always has
    # its message: the foreign key), and the index cost ~12 µs per received message on SQLite.
    conversation_id = models.BigIntegerField()
    inbox_id = models.BigIntegerField()
    sent_at = models.DateTimeField()
    document = DocumentField()

    class Meta:
        # The SQLite FTS5 table's triggers live on this table: a migration that makes SQLite
        # rebuild it (most column changes) must re-create them (engines.install_schema).
        db_table = "search_messageentry"


class CustomerEntry(models.Model):
    """A customer's name, email and phone as terms, for the customers group of results."""

    customer = RowIdOneToOneField(
        "customers.Customer", primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    document = DocumentField()
    # The customer's updated_at when indexed: a newer one means the entry is stale.
    source_updated_at = models.DateTimeField()

    class Meta:
        db_table = "search_customerentry"
