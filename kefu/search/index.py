"""Keeping the search index in step with the messages and customers.

Two ways in, both idempotent (docs/search.md has the measurements behind them):

- after commit (what the domain-event subscribers do): :func:`ensure_indexed` hands the message
  to :func:`defer`, which indexes it within INDEX_DELAY together with whatever else this process
  committed meanwhile: one read and one short write per batch, in a background thread, so the
  request that wrote the message pays nothing and the write lock / commit is shared by the batch;
- inside the writer's transaction: :func:`index_messages`, from the objects the writer holds
  (one INSERT per call, no read); the subscribers then find the ids in this process's memo and
  skip them.

Merges move messages between conversations (:func:`resync_conversations`), erasure removes or
rewrites text (:func:`unindex`, :func:`reindex_messages`), customers' names and contact points
change (:func:`index_customers`). :func:`reindex_all` rebuilds everything (``kefu search
reindex``); :func:`catch_up_all` indexes whatever is missing (``kefu search catch-up``).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction

from kefu.conversations.models import Conversation, Message
from kefu.core.bulk import adapt_datetime
from kefu.customers.models import Customer
from kefu.search.engines import CUSTOMER_TABLE, MESSAGE_TABLE, Engine, engine_for
from kefu.search.text import index_terms

logger = logging.getLogger(__name__)

CATCH_UP_LIMIT = 1000
MEMO_SIZE = 20_000

# --- the memo: message ids indexed by this process whose after-commit events are still to come


class _Memo(threading.local):
    def __init__(self) -> None:
        self.ids: set[int] = set()


_memo = _Memo()


def _remember(ids: Iterable[int]) -> None:
    if len(_memo.ids) > MEMO_SIZE:
        _memo.ids.clear()  # only a cache: forgetting costs one catch-up query, never an entry
    _memo.ids.update(ids)


# Customers whose entry this process wrote, by the ``updated_at`` it was written from: a
# customer writing again, unchanged, needs no new entry (in a 500-message batch most customers
# are known: their analysis and upsert were ~10% of what search added to a received message).
# Every change of a name, email or phone moves ``updated_at`` or is followed by its own event
# (edits, merges, erasure: see subscribers), whose indexing does not depend on this memo.
_customers_written: dict[int, Any] = {}


def _remember_customers(written: dict[int, Any]) -> None:
    if len(_customers_written) > MEMO_SIZE:
        _customers_written.clear()  # only a cache: forgetting costs an upsert that changes nothing
    _customers_written.update(written)


def _customer_current(customer: Customer) -> bool:
    return (
        customer.updated_at is not None
        and _customers_written.get(customer.pk) == customer.updated_at
    )


def _seen(message_id: int) -> bool:
    if message_id in _memo.ids:
        _memo.ids.discard(message_id)
        return True
    return False


# --- documents -----------------------------------------------------------------------------


def message_document(subject: str, text: str) -> list[str]:
    """The terms of a message: its subject (when it has one), then its text."""
    terms = index_terms(text or "")
    if subject:
        return index_terms(subject) + terms
    return terms


def customer_document(name: str, email: str, phone: str) -> list[str]:
    # The phone's digits as one term ("+86 138..." is stored as +86138...: the E.164 digits).
    digits = "".join(ch for ch in phone if ch.isdigit())
    return index_terms(name or "") + index_terms(email or "") + ([digits] if digits else [])


def _db() -> Any:
    """The default connection itself: ``django.db.connection`` is a proxy that looks the
    connection up at every attribute access (2-3% of a received batch's time on SQLite, when
    each row's datetime adaptation went through it)."""
    return connections[DEFAULT_DB_ALIAS]


def _message_row(engine: Engine, db: Any, pk: int, conversation_id: int, inbox_id: int,
                 sent_at: Any, subject: str, text: str) -> tuple:  # fmt: skip
    encoded = engine.encode_terms(message_document(subject, text))
    return _entry_row(engine, db, pk, conversation_id, inbox_id, sent_at, encoded)


def _entry_row(engine: Engine, db: Any, pk: int, conversation_id: int, inbox_id: int,
               sent_at: Any, encoded: str) -> tuple:  # fmt: skip
    """A message's entry from its terms as ``engine.encode_terms`` made them."""
    return (
        pk,
        conversation_id,
        inbox_id,
        adapt_datetime(sent_at, db),
        engine.complete(encoded, pk, inbox_id),
    )


def _customer_row(engine: Engine, db: Any, pk: int, name: str, email: str, phone: str,
                  updated_at: Any, encoded: str | None = None) -> tuple:  # fmt: skip
    """``encoded``: the document's terms as ``engine.encode_terms`` made them, if known."""
    if encoded is None:
        encoded = engine.encode_terms(customer_document(name, email, phone))
    return (pk, engine.complete(encoded, pk), adapt_datetime(updated_at, db))


def analyze_inbound(engine: Engine, subject: str, text: str, name: str, email: str,
                    phone: str) -> dict[str, Any]:  # fmt: skip
    """What :func:`index_received` needs of a message before it is stored: its encoded terms,
    and those of the customer a message with these contact fields creates (most customers of
    a batch are known and current, but analyzing a new one's name and email inside the
    storing transaction was a third of search's Python work there)."""
    return {
        "search_words": engine.encode_terms(message_document(subject, text)),
        "search_contact": (
            (name, email, phone),
            engine.encode_terms(customer_document(name, email, phone)),
        ),
    }


def _write(
    engine: Engine,
    messages: list[tuple],
    customers: list[tuple],
    *,
    replace: bool,
    fresh: bool = False,
) -> None:
    """Write entries. ``fresh``: the messages were stored by this transaction, so no entry can
    exist for them (Engine.insert_new_messages); else ``replace`` says whether to overwrite."""
    with connection.cursor() as cursor:
        if messages and fresh:
            engine.insert_new_messages(cursor, messages)
        elif messages:
            engine.write_messages(cursor, messages, replace=replace)
        if customers:
            engine.write_customers(cursor, customers)


# --- in the writer's transaction ----------------------------------------------------------


def index_messages(messages: Iterable[Message], *, customers: Iterable[Customer] = ()) -> None:
    """Index ``messages`` (and refresh ``customers``' entries) in the caller's transaction.

    For the write paths that hold the objects they just saved: no query besides the INSERTs.
    Each message needs ``conversation`` loaded (its inbox scopes the entry). The after-commit
    subscribers then skip these messages (see the module doc).
    """
    engine, db = engine_for(), _db()
    rows = []
    for message in messages:
        conversation = message.conversation
        rows.append(
            _message_row(
                engine,
                db,
                message.pk,
                message.conversation_id,
                conversation.inbox_id,
                message.sent_at,
                message.subject,
                message.text,
            )
        )
    people = [
        _customer_row(engine, db, c.pk, c.name, c.email, c.phone, c.updated_at)
        for c in {c.pk: c for c in customers}.values()
    ]
    _write(engine, rows, people, replace=True)
    ids = [row[0] for row in rows]
    # Registered before the caller's own events (emitted later in the same transaction), so the
    # memo is filled by the time the subscribers run; a rollback discards it with the entries.
    transaction.on_commit(lambda: _remember(ids))


def index_received(stored: Iterable[tuple[Message, Conversation, Customer, Any]]) -> None:
    """Index just-received messages in the transaction that stores them (the pipeline's store
    hook); ``stored`` holds (message, conversation, customer, prepared), with what the
    prepare hook computed outside the transaction (:func:`analyze_inbound`) in
    ``prepared.extras``.

    Their customers' entries are written too, unless this process wrote the same version of
    the customer before (``_customers_written``; an unchanged one costs PostgreSQL nothing
    either way: see ``upsert_customers_sql``). In a savepoint: should it fail, the messages are
    stored all the same and the after-commit path indexes them (they are not in the memo).
    """
    engine, db = engine_for(), _db()
    rows, people = [], {}
    versions: dict[int, Any] = {}
    for message, conversation, customer, prepared in stored:
        extras = prepared.extras
        words = extras.get("search_words")
        if words is None:
            words = engine.encode_terms(message_document(message.subject, message.text))
        row = _entry_row(
            engine, db, message.pk, conversation.pk, conversation.inbox_id, message.sent_at, words
        )
        rows.append(row)
        if customer.pk not in people and not _customer_current(customer):
            contact = (customer.name, customer.email, customer.phone)
            analyzed = extras.get("search_contact")
            people[customer.pk] = _customer_row(
                engine, db, customer.pk, *contact, customer.updated_at,
                analyzed[1] if analyzed and analyzed[0] == contact else None,
            )  # fmt: skip
            versions[customer.pk] = customer.updated_at
    customers = list(people.values())
    if len(rows) >= AFTER_COMMIT_MIN_ROWS and _outermost_on_postgres():
        transaction.on_commit(lambda: _write_committed(engine, rows, customers, versions))
        return
    try:
        with transaction.atomic():
            _write(engine, rows, customers, replace=False, fresh=True)
    except Exception:
        logger.exception("search: indexing received messages failed; left to the catch-up")
        return
    ids = [row[0] for row in rows]

    def committed() -> None:
        _remember(ids)
        _remember_customers(versions)

    transaction.on_commit(committed)


# On PostgreSQL the entries of a request's own transaction are written right after its commit,
# by the same thread, before it answers: the storing transaction's locks (the conversations,
# a batch's new identities) are then released before the GIN insertion, the longest statement
# of a batch, so a concurrent batch waiting on them starts that much sooner (bench/search.py
# --ingest, batches: -29% -> see bench/RESULTS.md, session 7). Entries are derived data, so
# their commit does not wait for the WAL flush; a crash in between loses entries that the
# catch-up (the indexing thread's start, `kefu search catch-up`) writes again. SQLite keeps
# them in the storing transaction: a second write transaction would queue for the write lock.
#
# Small groups (single messages, combined) stay in the storing transaction: for them a second
# transaction's round trips cost more than the lock time they would save.
AFTER_COMMIT_MIN_ROWS = 100


def _outermost_on_postgres() -> bool:
    return connection.vendor == "postgresql" and len(connection.atomic_blocks) == 1


def _write_committed(
    engine: Engine, rows: list[tuple], customers: list[tuple], versions: dict[int, Any]
) -> None:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
            _write(engine, rows, customers, replace=False, fresh=True)
    except Exception:
        # Not in the memo: the after-commit subscribers index these messages again.
        logger.exception("search: indexing received messages failed; left to the catch-up")
        return
    _remember([row[0] for row in rows])
    _remember_customers(versions)


# --- after commit ----------------------------------------------------------------------------


def ensure_indexed(message_id: int) -> None:
    """Have message ``message_id`` indexed: shortly, batched with the other messages this
    process commits meanwhile (see :func:`defer`), unless it was indexed in its transaction."""
    if _seen(message_id):
        return
    defer([message_id])


# Messages committed within this delay of each other are indexed in one write. Zero indexes at
# once (the test suite does so: no thread outlives a test).
INDEX_DELAY = 0.25


class _Pending:
    """Message ids committed by this process and not indexed yet, and the thread indexing them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: set[int] = set()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None


_pending = _Pending()


def defer(message_ids: Iterable[int]) -> None:
    """Index ``message_ids`` within INDEX_DELAY, in a background thread of this process.

    One write per batch instead of one per message: on SQLite the write lock and FTS5's segment
    flush, on PostgreSQL the commit's fsync, are paid once for all the messages committed
    meanwhile, and never inside the request that wrote them. Inside a transaction (a caller's
    atomic block, a test), or with INDEX_DELAY 0, the messages are indexed at once instead.
    A crash can lose what was pending; the thread catches up on the newest messages when it
    starts, and ``kefu search catch-up`` repairs the rest. Searching flushes this process's
    pending messages first, so a writer always finds what it just wrote.
    """
    ids = list(message_ids)
    if INDEX_DELAY <= 0 or connection.in_atomic_block:
        index_ids(ids)
        return
    with _pending.lock:
        _pending.ids.update(ids)
        if _pending.thread is None or not _pending.thread.is_alive():
            _pending.thread = threading.Thread(target=_run, name="kefu-search-index", daemon=True)
            _pending.thread.start()
    _pending.wake.set()


def flush_pending() -> int:
    """Index this process's pending messages now; returns how many were written."""
    with _pending.lock:
        ids, _pending.ids = _pending.ids, set()
    return index_ids(ids) if ids else 0


def _run() -> None:
    from django.db import connection

    try:
        catch_up_tail()
    except Exception:
        logger.exception("search: catching up on the newest messages failed")
    while True:
        _pending.wake.wait()
        time.sleep(INDEX_DELAY)  # let the messages committed meanwhile join this batch
        _pending.wake.clear()
        try:
            flush_pending()
        except Exception:
            # The ids are dropped, not retried in a loop: `kefu search catch-up` repairs.
            logger.exception("search: indexing pending messages failed")
        finally:
            # Idle until the next message: hold no database session meanwhile.
            if not _pending.ids:
                connection.close()


atexit.register(lambda: flush_pending() if _pending.ids else None)


def index_ids(message_ids: Iterable[int]) -> int:
    """Index the messages ``message_ids`` not indexed yet (with their customers' entries when
    missing or stale), in one read and one write; returns how many were written."""
    ids = sorted(set(message_ids))
    written = 0
    for start in range(0, len(ids), CATCH_UP_LIMIT):
        chunk = ids[start : start + CATCH_UP_LIMIT]
        where = f"m.id IN ({', '.join(['%s'] * len(chunk))})"
        written += len(_write_unindexed(_unindexed(where, chunk, len(chunk))))
    return written


def catch_up_tail(window: int = 50_000) -> int:
    """Index what is missing among the newest ``window`` message ids (a restart's repair)."""
    newest = Message.objects.order_by("-pk").values_list("pk", flat=True).first()
    if newest is None:
        return 0
    total, from_id = 0, max(0, newest - window)
    while ids := _catch_up(from_id, CATCH_UP_LIMIT):
        total += len(ids)
        from_id = ids[-1] + 1
    return total


def catch_up(from_id: int = 0, *, limit: int = CATCH_UP_LIMIT) -> int:
    """Index up to ``limit`` unindexed messages with ids from ``from_id``; returns how many.

    Their customers' entries are written too when missing or older than the customer. Safe to
    run concurrently: an entry written meanwhile by someone else is kept as it is.
    """
    return len(_catch_up(from_id, limit))


def catch_up_all() -> int:
    """Index every message missing from the index (a repair after a crash); returns how many."""
    total, from_id = 0, 0
    while ids := _catch_up(from_id, CATCH_UP_LIMIT):
        total += len(ids)
        from_id = ids[-1] + 1
    return total


def _catch_up(from_id: int, limit: int) -> list[int]:
    rows = _unindexed("m.id >= %s", [from_id], limit)
    ids = _write_unindexed(rows)
    _remember(pk for pk in ids if pk != from_id)
    return ids


def _write_unindexed(rows: list[tuple]) -> list[int]:
    if not rows:
        return []
    engine, db = engine_for(), _db()
    messages = [_message_row(engine, db, *row[:6]) for row in rows]
    people = {
        row[6]: _customer_row(engine, db, row[6], row[7], row[8], row[9], row[10])
        for row in rows
        if row[11]
    }
    with transaction.atomic():
        _write(engine, messages, list(people.values()), replace=False)
    return [row[0] for row in rows]


def _unindexed(where: str, params: list[Any], limit: int) -> list[tuple]:
    """Messages matching ``where`` (over ``m``) without an entry, oldest first, with their
    conversation's inbox and their customer (and whether its entry needs writing)."""
    message, conversation = Message._meta.db_table, Conversation._meta.db_table
    customer = Customer._meta.db_table
    sql = f"""
        SELECT m.id, m.conversation_id, c.inbox_id, m.sent_at, m.subject, m.text,
               cu.id, cu.name, cu.email, cu.phone, cu.updated_at,
               CASE WHEN ce.source_updated_at IS NULL OR ce.source_updated_at <> cu.updated_at
                    THEN 1 ELSE 0 END
        FROM {message} m
        JOIN {conversation} c ON c.id = m.conversation_id
        JOIN {customer} cu ON cu.id = c.customer_id
        LEFT JOIN {CUSTOMER_TABLE} ce ON ce.customer_id = cu.id
        WHERE {where} AND NOT EXISTS (
            SELECT 1 FROM {MESSAGE_TABLE} e WHERE e.message_id = m.id)
        ORDER BY m.id LIMIT %s
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        return cursor.fetchall()


# --- changes to stored messages and customers ------------------------------------------------


def reindex_messages(message_ids: Iterable[int]) -> None:
    """Re-analyze ``message_ids`` from their current text (an edit, a redaction); messages
    that no longer exist lose their entries."""
    ids = sorted(set(message_ids))
    if not ids:
        return
    engine, db = engine_for(), _db()
    found = Message.objects.filter(pk__in=ids).values_list(
        "pk", "conversation_id", "conversation__inbox_id", "sent_at", "subject", "text"
    )
    rows = [_message_row(engine, db, *row) for row in found]
    with transaction.atomic():
        _write(engine, rows, [], replace=True)
        unindex(set(ids) - {row[0] for row in rows})


def unindex(message_ids: Iterable[int]) -> int:
    """Remove ``message_ids`` from the index (erasure); returns how many entries went."""
    from kefu.search.models import MessageEntry

    ids = list(set(message_ids))
    removed = 0
    for start in range(0, len(ids), 500):
        removed += MessageEntry.objects.filter(pk__in=ids[start : start + 500]).delete()[0]
    return removed


def reindex_customer_messages(customer_id: int) -> None:
    """Re-analyze every message of the customer's conversations (after an erasure)."""
    # Through the messages: an entry always has its message (the foreign key), so a message
    # gone has no entry left to find.
    ids = Message.objects.filter(conversation__customer_id=customer_id).values_list("pk", flat=True)
    reindex_messages(ids)


def resync_conversations(conversation_ids: Iterable[int]) -> int:
    """Point the entries of the messages now in ``conversation_ids`` at their conversation
    and its inbox (after a merge or an unmerge: pass both ends, for the messages that moved
    out of one are in the other; after a move to another inbox); returns rows considered.

    Through the messages, not the entries' ``conversation_id`` (not indexed: an index there
    cost every received message more than merges would ever save; see migration 0006).
    """
    ids = list(set(conversation_ids))
    moved = Message.objects.filter(conversation_id__in=ids).values_list(
        "conversation_id", "conversation__inbox_id", "pk"
    )
    # On PostgreSQL the document carries the inbox as a lexeme too (engines.inbox_lexeme).
    postgres = connection.vendor == "postgresql"
    rows = [(c, i, *([i] if postgres else []), m, c, i) for c, i, m in moved]
    document = (
        ", document = ts_delete(document, '#i:' || inbox_id) "
        "|| array_to_tsvector(ARRAY['#i:' || %s])"
        if postgres
        else ""
    )
    sql = (
        f"UPDATE {MESSAGE_TABLE} SET conversation_id = %s, inbox_id = %s{document} "  # noqa: S608
        "WHERE message_id = %s AND (conversation_id <> %s OR inbox_id <> %s)"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, rows)
    return len(rows)


def index_customers(customer_ids: Iterable[int]) -> None:
    """(Re)write the entries of ``customer_ids``; a merged-away or deleted customer's goes."""
    from kefu.search.models import CustomerEntry

    ids = list(set(customer_ids))
    engine, db = engine_for(), _db()
    live = Customer.objects.filter(pk__in=ids, merged_into__isnull=True).values_list(
        "pk", "name", "email", "phone", "updated_at"
    )
    rows = [_customer_row(engine, db, *row) for row in live]
    with transaction.atomic():
        _write(engine, [], rows, replace=True)
        gone = set(ids) - {row[0] for row in rows}
        CustomerEntry.objects.filter(pk__in=gone).delete()


# --- everything ------------------------------------------------------------------------------


def reindex_all(
    *, batch: int = 2000, progress: Callable[[int], None] | None = None
) -> tuple[int, int]:
    """Rebuild the whole index from the messages and customers; returns (messages, customers).

    Runs in batches of ``batch`` rows, each its own transaction, so ingestion keeps going
    meanwhile (what it writes is indexed by its own path). ``progress(n)`` is called after each
    batch with the rows done in it.
    """
    from kefu.search.models import CustomerEntry, MessageEntry

    engine, db = engine_for(), _db()
    # Start from nothing: without the engine's schema the rows go cheaply (on SQLite, deleting
    # rows FTS5 never indexed would corrupt it), then the schema comes back empty and indexes
    # the rows as they are written (PostgreSQL builds its GIN index once, at the end).
    with transaction.atomic():  # concurrent writers wait: none writes between the steps
        engine.uninstall()
        MessageEntry.objects.all().delete()
        CustomerEntry.objects.all().delete()
        engine.before_bulk_load()
    messages = customers = 0
    for chunk in _message_chunks(batch):
        rows = [_message_row(engine, db, *row) for row in chunk]
        with transaction.atomic():
            _write(engine, rows, [], replace=True)
        messages += len(rows)
        if progress:
            progress(len(rows))
    for chunk in _customer_chunks(batch):
        rows = [_customer_row(engine, db, *row) for row in chunk]
        with transaction.atomic():
            _write(engine, [], rows, replace=True)
        customers += len(rows)
        if progress:
            progress(len(rows))
    engine.after_bulk_load()
    return messages, customers


def _message_chunks(batch: int) -> Iterator[list[tuple]]:
    last = 0
    while True:
        chunk = list(
            Message.objects.filter(pk__gt=last)
            .order_by("pk")
            .values_list(
                "pk", "conversation_id", "conversation__inbox_id", "sent_at", "subject", "text"
            )[:batch]
        )
        if not chunk:
            return
        last = chunk[-1][0]
        yield chunk


def _customer_chunks(batch: int) -> Iterator[list[tuple]]:
    last = 0
    while True:
        chunk = list(
            Customer.objects.filter(pk__gt=last, merged_into__isnull=True)
            .order_by("pk")
            .values_list("pk", "name", "email", "phone", "updated_at")[:batch]
        )
        if not chunk:
            return
        last = chunk[-1][0]
        yield chunk
