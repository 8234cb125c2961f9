"""The index stays in step with writes: new messages, replies, notes, batches, merges, erasure,
customer changes; a reindex rebuilds it and a catch-up repairs what a crash left out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from kefu.conversations.actions import (
    add_inbox_member,
    add_note,
    merge_conversations,
    reply,
    unmerge_conversations,
)
from kefu.conversations.batch import receive_batch
from kefu.conversations.inbound import InboundMessage
from kefu.conversations.models import Conversation, InboxMembership, Message
from kefu.core.bulk import COPY_MIN_ROWS
from kefu.core.events import emit
from kefu.customers.actions import merge_customers, unmerge_customers
from kefu.search import index
from kefu.search.checks import search_schema
from kefu.search.engines import engine_for
from kefu.search.models import CustomerEntry, MessageEntry
from kefu.search.service import search
from tests.factories import AgentFactory, InboxFactory
from tests.search.conftest import conversation_ids, customer_ids, receive

pytestmark = pytest.mark.django_db


def hits(agent, query):
    return conversation_ids(search(agent=agent, q=query))


def test_an_inbound_message_is_searchable_once_committed(inbox, agent, committed):
    with committed():
        received = receive(inbox, "m1", "The blender arrived broken", email="ana@example.com")
    assert hits(agent, "blender") == [received.conversation.pk]
    entry = MessageEntry.objects.get(pk=received.message.pk)
    assert (entry.conversation_id, entry.inbox_id) == (received.conversation.pk, inbox.pk)


def test_nothing_is_indexed_when_the_write_rolls_back(inbox, agent, committed):
    with committed(), pytest.raises(RuntimeError), transaction.atomic():
        received = receive(inbox, "m1", "The blender arrived broken", email="ana@example.com")
        index.index_messages([received.message])
        raise RuntimeError("the writer fails after indexing")
    assert not MessageEntry.objects.exists()
    assert hits(agent, "blender") == []


def test_replies_and_notes_are_searchable(inbox, agent, committed):
    with committed():
        received = receive(inbox, "m1", "Hello", email="ana@example.com")
    with committed():
        reply(conversation=received.conversation, actor=agent, text="Your voucher code is XK42")
        add_note(conversation=received.conversation, actor=agent, text="Gave a goodwill voucher")
    assert hits(agent, "xk42") == [received.conversation.pk]
    assert hits(agent, "goodwill") == [received.conversation.pk]


def test_a_batch_is_indexed_by_its_first_event(
    inbox, agent, committed, django_assert_max_num_queries
):
    entries = [
        (inbox, InboundMessage(external_id=f"b{i}", identities=[("email", f"p{i}@example.com")],
                               text=f"batch message number {i} about kettles"))
        for i in range(60)
    ]  # fmt: skip
    with committed() as callbacks:
        receive_batch(entries)
    assert MessageEntry.objects.count() == 60
    assert CustomerEntry.objects.count() == 60
    assert len(hits(agent, "kettles")) == 20  # the top 20 of 60 conversations
    assert len(callbacks) >= 60


def test_after_commit_indexing_costs_one_read_and_one_write_transaction(
    inbox, agent, committed, django_assert_num_queries
):
    with committed():
        conversation = receive(inbox, "m0", "first", email="ana@example.com").conversation
    with transaction.atomic():
        # A message written outside the inbound pipeline (whose store hook indexes in its own
        # transaction), as a connector's import or a repair could.
        message = Message.objects.create(
            conversation=conversation, inbox=inbox, direction="inbound", author_kind="customer",
            text="second", sent_at=conversation.last_message_at,
        )  # fmt: skip
    # The pending message: one SELECT finds it with its customer, then savepoint + INSERT +
    # release (the customer's entry is fresh, so it is not rewritten); on SQLite a read of
    # which entries exist already (a catch-up may race another writer), the insert, and a
    # second one giving the new rows to FTS5.
    with django_assert_num_queries(6 if connection.vendor == "sqlite" else 4):
        index.ensure_indexed(message.pk)
    assert MessageEntry.objects.filter(pk=message.pk).exists()


def test_received_messages_are_indexed_in_the_transaction_that_stores_them(
    inbox, agent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        single = receive(inbox, "m1", "The kettle leaks", email="ana@example.com")
        results = receive_batch(
            [
                (inbox, InboundMessage(external_id=f"b{n}", text=f"toaster number {n}",
                                       identities=[("email", f"b{n}@example.com")]))
                for n in range(3)
            ]
        )  # fmt: skip
        # Before the commit, inside the writer's transaction: the entries are there.
        stored = [single.message.pk, *(r["message_id"] for r in results)]
        assert set(MessageEntry.objects.values_list("pk", flat=True)) == set(stored)
        assert CustomerEntry.objects.count() == 4
    with CaptureQueriesContext(connection) as queries:
        for callback in callbacks:
            callback()
    # The after-commit subscribers know these are done: search does not look for them again.
    assert [q["sql"] for q in queries if "search_" in q["sql"]] == []
    assert set(hits(agent, "toaster")) == {r["conversation_id"] for r in results}


def test_a_failing_index_write_never_loses_the_received_message(
    inbox, agent, committed, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("the index is broken")

    with monkeypatch.context() as patched:
        patched.setattr(index, "_write", broken)
        with committed():
            received = receive(inbox, "m1", "The blender arrived broken", email="ana@example.com")
    assert Message.objects.filter(pk=received.message.pk).exists()
    # Left to the after-commit path, which (with the index working again) catches up.
    index.catch_up()
    assert hits(agent, "blender") == [received.conversation.pk]


def test_an_entry_already_there_fails_only_the_index_write(inbox, agent, committed):
    # Received messages are new, so their entries go in without a conflict check (a COPY on
    # PostgreSQL from COPY_MIN_ROWS on); should one exist all the same, the index write fails
    # alone, in its savepoint, and the transaction goes on.
    with committed():
        received = [
            receive(inbox, f"m{n}", f"The blender number {n} arrived broken", email="a@x.com")
            for n in range(COPY_MIN_ROWS)
        ]
    extras = {"search_words": engine_for().encode_terms(["replaced"])}
    prepared = type("Prepared", (), {"extras": extras})()
    stored = [(r.message, r.conversation, r.conversation.customer, prepared) for r in received]
    with committed():
        index.index_received(stored)
        received[0].conversation.refresh_from_db()  # the transaction is still usable
    assert MessageEntry.objects.count() == COPY_MIN_ROWS
    assert hits(agent, "blender") == [received[0].conversation.pk]
    assert hits(agent, "replaced") == []


def test_a_received_customer_entry_uses_the_analysis_made_before_storing_only_if_it_fits(
    inbox, agent, committed
):
    # The prepare hook analyzes the contact fields a new customer would get from the message;
    # the storing transaction uses that analysis only when the stored customer has exactly
    # those fields (a known customer keeps its own name, email and phone).
    with committed():
        received = receive(inbox, "m1", "hello", email="ana@example.com", name="Ana Lopez")
    customer = received.conversation.customer
    engine = engine_for()

    def index_with(contact: tuple, words: list[str], stamp: int) -> None:
        customer.updated_at = customer.updated_at + timedelta(seconds=stamp)  # not current
        extras = {"search_contact": (contact, engine.encode_terms(words))}
        prepared = type("Prepared", (), {"extras": extras})()
        CustomerEntry.objects.filter(pk=customer.pk).delete()
        with committed():
            index.index_received([(received.message, received.conversation, customer, prepared)])

    MessageEntry.objects.all().delete()
    index_with(("Someone Else", "else@example.com", ""), ["someone"], 1)
    assert customer_ids(search(agent=agent, q="someone")) == []
    assert customer_ids(search(agent=agent, q="lopez")) == [customer.pk]
    MessageEntry.objects.all().delete()
    index_with((customer.name, customer.email, customer.phone), ["analyzedbefore"], 2)
    assert customer_ids(search(agent=agent, q="analyzedbefore")) == [customer.pk]


def test_indexing_in_the_transaction_spares_the_after_commit_work(
    inbox, agent, django_capture_on_commit_callbacks
):
    conversation = receive(inbox, "m0", "hello", email="ana@example.com").conversation
    # A writer that indexes before it emits its event (as the pipeline would).
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        message = Message.objects.create(
            conversation=conversation, inbox=inbox, direction="inbound", author_kind="customer",
            text="indexed in the same transaction", sent_at=conversation.last_message_at,
        )  # fmt: skip
        index.index_messages([message], customers=[conversation.customer])
        emit("message.received", message_id=message.pk, conversation_id=conversation.pk)
    with CaptureQueriesContext(connection) as queries:
        for callback in callbacks:
            callback()
    # Other apps' subscribers may query; search's own does not look for the message again.
    assert [q["sql"] for q in queries if "search_" in q["sql"]] == []
    assert hits(agent, "transaction") == [conversation.pk]


def test_indexing_twice_is_harmless(inbox, agent, committed):
    with committed():
        received = receive(inbox, "m1", "teapot", email="ana@example.com")
        index.index_messages([received.message])
    index.reindex_messages([received.message.pk])
    assert MessageEntry.objects.count() == 1
    assert hits(agent, "teapot") == [received.conversation.pk]


def test_merge_and_unmerge_move_the_hits(inbox, agent, committed):
    with committed():
        first = receive(inbox, "m1", "Where is the umbrella", email="ana@example.com")
    Conversation.objects.filter(pk=first.conversation.pk).update(status="closed")
    with committed():
        second = receive(inbox, "m2", "Also the raincoat", email="ana@example.com")
    assert second.conversation.pk != first.conversation.pk
    with committed():
        merge = merge_conversations(
            source=first.conversation, target=second.conversation, actor=agent
        )
    assert hits(agent, "umbrella") == [second.conversation.pk]
    with committed():
        unmerge_conversations(merge=merge, actor=agent)
    assert hits(agent, "umbrella") == [first.conversation.pk]
    assert hits(agent, "raincoat") == [second.conversation.pk]


def test_a_merge_into_another_inbox_moves_the_scope(agent, committed):
    mine, theirs = InboxFactory(), InboxFactory()
    InboxMembership.objects.create(inbox=mine, agent=agent)
    with committed():
        source = receive(mine, "m1", "A question about saucepans", email="ana@example.com")
        target = receive(theirs, "m2", "Hello", email="ana@example.com")
    assert hits(agent, "saucepans") == [source.conversation.pk]
    with committed():
        merge_conversations(source=source.conversation, target=target.conversation, actor=None)
    assert hits(agent, "saucepans") == []
    entry = MessageEntry.objects.get(pk=source.message.pk)
    assert (entry.conversation_id, entry.inbox_id) == (target.conversation.pk, theirs.pk)
    # Someone who sees the target inbox finds it there (on PostgreSQL through the document's
    # inbox lexeme, rewritten by the move).
    theirs_agent = AgentFactory()
    InboxMembership.objects.create(inbox=theirs, agent=theirs_agent)
    assert hits(theirs_agent, "saucepans") == [target.conversation.pk]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT tsvector_to_array(document) FROM search_messageentry WHERE message_id = %s",
                [source.message.pk],
            )
            lexemes = cursor.fetchone()[0]
        assert [x for x in lexemes if x.startswith("#i:")] == [f"#i:{theirs.pk}"]


def test_unindex_and_deletion_remove_messages(inbox, agent, committed):
    with committed():
        one = receive(inbox, "m1", "secret recipe for dumplings", email="ana@example.com")
        two = receive(inbox, "m2", "dumplings again", email="bo@example.com")
    assert index.unindex([one.message.pk]) == 1
    assert hits(agent, "recipe") == []
    Message.objects.filter(pk=two.message.pk).delete()
    assert hits(agent, "dumplings") == []
    assert not MessageEntry.objects.exists()


def test_an_erased_customer_is_reanalyzed_from_what_is_left(inbox, agent, committed):
    with committed():
        received = receive(
            inbox, "m1", "My passport number is X1234567", email="ana@example.com", name="Ana Lima"
        )
    customer = received.conversation.customer
    Message.objects.filter(pk=received.message.pk).update(text="[erased]")
    type(customer).objects.filter(pk=customer.pk).update(name="", email="")
    with committed():
        emit("customer.erased", customer_id=customer.pk)
    assert hits(agent, "x1234567") == []
    assert customer_ids(search(agent=agent, q="lima")) == []
    assert hits(agent, "erased") == [received.conversation.pk]


def test_customer_merges_follow_the_live_customer(inbox, agent, committed):
    with committed():
        one = receive(inbox, "m1", "hello", email="ana@example.com", name="Ana Lima")
        two = receive(inbox, "m2", "hi", email="ana.lima@example.org", name="Ana Lima")
    source, target = one.conversation.customer, two.conversation.customer
    assert set(customer_ids(search(agent=agent, q="ana lima"))) == {source.pk, target.pk}
    with committed():
        merge = merge_customers(source=source, target=target, actor=agent)
    assert customer_ids(search(agent=agent, q="ana lima")) == [target.pk]
    with committed():
        unmerge_customers(merge=merge, actor=agent)
    assert set(customer_ids(search(agent=agent, q="ana lima"))) == {source.pk, target.pk}


def test_catch_up_indexes_messages_written_without_events(inbox, agent, committed):
    with committed():
        received = receive(inbox, "m1", "hello", email="ana@example.com")
    at = received.message.sent_at
    Message.objects.bulk_create(
        [
            Message(conversation=received.conversation, inbox=inbox, direction="inbound",
                    author_kind="customer", text=f"imported teapot {i}", sent_at=at)
            for i in range(3)
        ]
    )  # fmt: skip
    assert hits(agent, "teapot") == []
    assert index.catch_up_tail() == 3  # what the background thread does when it starts
    assert hits(agent, "teapot") == [received.conversation.pk]
    assert index.catch_up_all() == 0


def test_reindex_rebuilds_everything_and_the_schema(inbox, agent, committed, capsys):
    with committed():
        received = receive(inbox, "m1", "Lost my scarf", email="ana@example.com", name="Ana")
    engine = engine_for()
    engine.uninstall()
    assert [m.id for m in search_schema()] == ["search.W001"]
    call_command("search", "reindex", "--no-progress")
    assert "indexed 1 messages and 1 customers" in capsys.readouterr().out
    assert search_schema() == []
    assert hits(agent, "scarf") == [received.conversation.pk]


def test_a_new_member_sees_the_inbox_history(inbox, committed):
    newcomer = AgentFactory()
    with committed():
        received = receive(inbox, "m1", "An old complaint about kettles", email="ana@example.com")
    assert hits(newcomer, "kettles") == []
    add_inbox_member(inbox=inbox, agent=newcomer, actor=None)
    newcomer = type(newcomer).objects.get(pk=newcomer.pk)  # the next request's agent
    assert hits(newcomer, "kettles") == [received.conversation.pk]


def test_the_newest_matches_come_first_across_recency_windows(inbox, agent, committed):
    """Ids far apart fall in different PostgreSQL recency windows; every engine returns the
    newest matches first and finds the old ones when there are not enough new ones."""
    from kefu.search.engines import Scope, recency_windows
    from kefu.search.query import parse

    conversation = receive(inbox, "m0", "hello", email="ana@example.com").conversation
    ids = [20_000, 70_000, 300_000, 1_000_000, 1_000_050]
    with committed():
        messages = [
            Message.objects.create(
                pk=pk,
                conversation=conversation,
                inbox=inbox,
                direction="inbound",
                author_kind="customer",
                text=f"windowed lantern {pk}",
                sent_at=conversation.last_message_at,
            )
            for pk in ids
        ]
        index.index_messages(messages)
    assert len(recency_windows(max(ids))) > 2
    engine = engine_for()
    found = engine.message_candidates(parse("lantern"), Scope(), limit=3)
    assert [c.message_id for c in found] == [1_000_050, 1_000_000, 300_000]
    found = engine.message_candidates(parse("lantern"), Scope(), limit=10)
    assert [c.message_id for c in found] == sorted(ids, reverse=True)


@pytest.mark.django_db(transaction=True)
def test_after_commit_indexing_is_deferred_and_a_search_flushes_it(monkeypatch):
    """In production the subscribers defer: the request that wrote pays nothing, a background
    thread writes the batch. A search in the writing process flushes what is pending first."""
    import threading

    inbox = InboxFactory()
    agent = AgentFactory(role="admin")
    monkeypatch.setattr(index, "INDEX_DELAY", 0.25)
    # The background thread is not started here (it would outlive the test): pretend it runs.
    monkeypatch.setattr(index._pending, "thread", threading.current_thread())
    # A received message is indexed in its own transaction (the pipeline's store hook); a
    # note, like a reply, is indexed after commit.
    received = receive(inbox, "m1", "A question", email="ana@example.com")
    assert MessageEntry.objects.filter(pk=received.message.pk).exists()
    note = add_note(conversation=received.conversation, actor=agent, text="Deferred: kettles")
    assert not MessageEntry.objects.filter(pk=note.pk).exists()
    assert index._pending.ids == {note.pk}
    assert hits(agent, "kettles") == [received.conversation.pk]
    assert index._pending.ids == set()
    assert MessageEntry.objects.filter(pk=note.pk).exists()


def test_indexing_off_leaves_new_messages_for_catch_up(inbox, agent, committed, settings):
    settings.KEFU_SEARCH_INDEXING = False
    with committed():
        received = receive(inbox, "m1", "A bulk-imported question about kettles", email="a@x.io")
    assert not MessageEntry.objects.exists()
    assert hits(agent, "kettles") == []
    call_command("search", "catch-up")
    assert hits(agent, "kettles") == [received.conversation.pk]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL GIN setting")
def test_postgres_indexes_keep_a_short_gin_pending_list():
    # Every query reads the whole pending list: at PostgreSQL's default 4 MB each statement of
    # a search read ~250 extra pages. Migrated indexes and rebuilt ones carry the cap.
    from kefu.search.engines import GIN_PENDING_LIST_KB, PostgresEngine

    engine = PostgresEngine()
    names = [engine.MESSAGE_INDEX, engine.CUSTOMER_INDEX]

    def options() -> dict[str, list[str]]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relname, reloptions FROM pg_class WHERE relname = ANY(%s)", [names]
            )
            return dict(cursor.fetchall())

    expected = [f"gin_pending_list_limit={GIN_PENDING_LIST_KB}"]
    assert options() == dict.fromkeys(names, expected)
    engine.uninstall()
    engine.install()
    assert options() == dict.fromkeys(names, expected)


def test_prefix_matches_widen_a_query_only_when_whole_words_do_not_fill_the_page(
    inbox, agent, committed
):
    with committed():
        whole = [
            receive(inbox, f"w{n}", f"the update broke it {n}", email=f"c{n}@example.com")
            for n in range(3)
        ]
        longer = receive(inbox, "x", "since it updated itself", email="x@example.com")
    whole_ids = {r.conversation.pk for r in whole}
    # Three conversations with "update" fill a page of two (and tell there is more): the
    # prefix query ("updated") is not run.
    page = search(agent=agent, q="update", limit=2)
    assert set(conversation_ids(page)) <= whole_ids and page.more
    # A page of five is not filled by whole words: prefix matches join.
    page = search(agent=agent, q="update", limit=5)
    assert set(conversation_ids(page)) == whole_ids | {longer.conversation.pk}
    # A word being typed is a prefix.
    assert conversation_ids(search(agent=agent, q="updat", limit=2))


def test_a_known_customer_writing_again_unchanged_is_not_reindexed(inbox, agent, committed):
    with committed():
        first = receive(inbox, "m1", "Hello there", email="ana@example.com")
    customer = first.conversation.customer
    with committed(), CaptureQueriesContext(connection) as queries:
        receive(inbox, "m2", "Hello again", email="ana@example.com")
    assert not [q for q in queries.captured_queries if "search_customerentry" in q["sql"]]
    assert hits(agent, "again") == [first.conversation.pk]
    # A change to the customer (a name filled in) moves updated_at: written again, found.
    with committed():
        receive(inbox, "m3", "Hello once more", email="ana@example.com", name="Ana Lima")
    customer.refresh_from_db()
    assert customer.name == "Ana Lima"
    assert customer_ids(search(agent=agent, q="lima")) == [customer.pk]


def _large_batch(inbox, count):
    return [
        (inbox, InboundMessage(external_id=f"L{n}", text=f"percolator number {n}",
                               identities=[("email", f"L{n}@example.com")]))
        for n in range(count)
    ]  # fmt: skip


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_large_batch_is_indexed_right_after_its_commit_before_the_answer(inbox, agent):
    # From AFTER_COMMIT_MIN_ROWS messages on PostgreSQL, the entries are written once the
    # storing transaction has released its locks, by the same thread, before it answers.
    results = receive_batch(_large_batch(inbox, index.AFTER_COMMIT_MIN_ROWS))

    assert MessageEntry.objects.count() == index.AFTER_COMMIT_MIN_ROWS
    assert CustomerEntry.objects.count() == index.AFTER_COMMIT_MIN_ROWS
    assert {r["status"] for r in results} == {"created"}
    assert len(hits(agent, "percolator")) == 20  # a page of them


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_failed_write_after_the_commit_is_left_to_the_catch_up(inbox, agent, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the index is broken")

    with monkeypatch.context() as patched:
        patched.setattr(index, "_write", broken)
        results = receive_batch(_large_batch(inbox, index.AFTER_COMMIT_MIN_ROWS))
    assert all(r["status"] == "created" for r in results)
    assert MessageEntry.objects.count() == 0
    index.catch_up()
    assert MessageEntry.objects.count() == index.AFTER_COMMIT_MIN_ROWS


def _fts5_consistent() -> None:
    """FTS5's own check that its index holds exactly the external content table's terms
    (a row indexed twice, or missing, or with other terms fails it)."""
    with connection.cursor() as cursor:
        for fts in ("search_message_fts", "search_customer_fts"):
            cursor.execute(f"INSERT INTO {fts}({fts}, rank) VALUES ('integrity-check', 1)")  # noqa: S608


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's FTS5 table")
def test_sqlite_fts5_stays_in_step_through_every_write_path(inbox, agent, committed):
    # New rows reach FTS5 from the engine (no insert trigger); updates and deletes by trigger.
    with committed():
        single = receive(inbox, "m1", "a cracked teapot lid", email="ana@example.com", name="Ana")
        receive_batch(
            [
                (inbox, InboundMessage(external_id=f"b{n}", text=f"kettle number {n}",
                                       identities=[("email", f"b{n}@example.com")]))
                for n in range(12)
            ]
        )  # fmt: skip
    _fts5_consistent()
    index.index_messages([single.message])  # an entry already there: rewritten in place
    Message.objects.filter(pk=single.message.pk).update(text="a cracked saucer")
    index.reindex_messages([single.message.pk])
    index.catch_up_all()  # nothing missing: writes nothing
    customer = single.conversation.customer
    type(customer).objects.filter(pk=customer.pk).update(name="Ana Lima")
    index.index_customers([customer.pk])
    index.index_customers([customer.pk])  # unchanged: no FTS5 work, still consistent
    _fts5_consistent()
    assert hits(agent, "saucer") == [single.conversation.pk]
    assert hits(agent, "teapot") == []
    assert customer_ids(search(agent=agent, q="lima")) == [customer.pk]
    assert len(hits(agent, "kettle")) == 12
    index.unindex([single.message.pk])
    call_command("search", "reindex", "--no-progress")
    _fts5_consistent()
    assert len(hits(agent, "kettle")) == 12


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's FTS5 triggers")
def test_sqlite_schema_has_no_insert_trigger():
    # An insert trigger made FTS5 write one segment per row (its statement savepoint); one
    # left over from an older schema would index every row twice: the check says so.
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        triggers = {name for (name,) in cursor.fetchall() if name.startswith("search_")}
    assert triggers == {
        "search_messageentry_ad", "search_messageentry_au",
        "search_customerentry_ad", "search_customerentry_au",
    }  # fmt: skip
    assert search_schema() == []
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TRIGGER search_messageentry_ai AFTER INSERT ON search_messageentry BEGIN "
            "INSERT INTO search_message_fts(rowid, document) VALUES (new.message_id, "
            "new.document); END"
        )
    assert [m.id for m in search_schema()] == ["search.W001"]
    # The migration that upgrades such a schema drops it.
    import importlib

    migration = importlib.import_module("kefu.search.migrations.0005_sqlite_insert_without_trigger")

    # (SQLite's schema editor refuses to open inside the test's transaction; the migration
    # needs only its connection and execute.)
    class Editor:
        def execute(self, sql):
            with connection.cursor() as cursor:
                cursor.execute(sql)

    Editor.connection = connection
    migration.drop_insert_triggers(None, Editor())
    assert search_schema() == []


def test_entries_have_no_conversation_index():
    # Written for every received message and read only by merges and erasure, which go
    # through the messages (migration 0006): the index is gone on both engines.
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "search_messageentry")
    indexed = [c["columns"] for c in constraints.values() if c["index"] and not c["primary_key"]]
    assert ["conversation_id"] not in indexed


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's FTS5 configuration")
def test_sqlite_fts5_merges_segments_in_eights():
    import importlib

    from kefu.search.engines import FTS5_AUTOMERGE

    def automerge():
        with connection.cursor() as cursor:
            values = []
            for fts in ("search_message_fts", "search_customer_fts"):
                cursor.execute(f"SELECT v FROM {fts}_config WHERE k = 'automerge'")  # noqa: S608
                values.append(cursor.fetchone()[0])
        return values

    assert FTS5_AUTOMERGE == 8
    assert automerge() == [8, 8]
    migration = importlib.import_module(
        "kefu.search.migrations.0006_entries_without_conversation_index"
    )

    class Editor:  # see test_sqlite_schema_has_no_insert_trigger
        def execute(self, sql):
            with connection.cursor() as cursor:
                cursor.execute(sql)

    Editor.connection = connection
    migration.set_automerge(4)(None, Editor())
    assert automerge() == [4, 4]
    migration.set_automerge(8)(None, Editor())
    assert automerge() == [8, 8]
    # A reindex re-creates the tables with the setting.
    call_command("search", "reindex", "--no-progress")
    assert automerge() == [8, 8]
