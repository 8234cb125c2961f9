"""The inbound pipeline for many messages at once, with the same rules as ``receive_message``.

Per batch, not per message: one query for duplicates, one per identity kind, three for thread
candidates (references, thread keys, recent conversations), then bulk inserts of customers,
identities, conversations, messages and events and one bulk update of conversation summaries.
Threading runs in memory in item order, so a message joins a conversation opened by an earlier
item of the same batch exactly as it would had they arrived one by one.

Concurrent batches may race: two of them create the same new identity, or store the same
message (IntegrityError), or lock the same conversations in another order (a deadlock on
PostgreSQL). The loser's transaction rolls back and the batch runs again: by then the winner has
committed, so the raced rows are found like any stored ones. After a few lost races in a row the
items go through ``receive_message`` one by one instead: slower, same result. Locks are taken in
a stable order (rows by id, identities by kind and value) to keep deadlocks rare.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime

from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from kefu.conversations.inbound import InboundMessage
from kefu.conversations.models import (
    AuthorKind,
    Conversation,
    Direction,
    Inbox,
    Message,
    Status,
)
from kefu.conversations.pipeline import (
    _INBOUND_FIELDS,
    _THREAD_FIELDS,
    ReceiveResult,
    _Prepared,
    _preview,
    _store_attachments,
    _window,
    prepare,
    receive_prepared,
    run_store_hooks,
    summarize_inbound,
)
from kefu.core.bulk import insert_many, update_many
from kefu.core.errors import KefuError
from kefu.core.events import emit
from kefu.customers.actions import _contact_fields
from kefu.customers.identities import IdentityRef
from kefu.customers.models import Customer, Identity

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Item:
    index: int
    inbox: Inbox
    prepared: _Prepared
    sent_at: datetime
    customer: Customer | None = None
    conversation: Conversation | None = None
    conversation_created: bool = False
    message: Message | None = None

    def reset(self) -> None:
        """Forget the work of an attempt that was rolled back."""
        self.customer = self.conversation = self.message = None
        self.conversation_created = False


@dataclass
class _Threads:
    """In-memory thread candidates for one inbox, updated as items are applied."""

    # external id -> (the conversation its message ended up in, the message's sent_at)
    by_reference: dict[str, tuple[Conversation, datetime]] = field(default_factory=dict)
    by_key: dict[str, Conversation] = field(default_factory=dict)
    by_customer: dict[int, list[Conversation]] = field(default_factory=lambda: defaultdict(list))
    # One Python object per stored row, so every item updates the same summary.
    loaded: dict[int, Conversation] = field(default_factory=dict)

    def one(self, conversation: Conversation) -> Conversation:
        return self.loaded.setdefault(conversation.pk, conversation)

    def remember(self, conversation: Conversation) -> None:
        """Keep the candidates as the database would answer after this item's write."""
        mine = self.by_customer[conversation.customer_id]
        if not any(c is conversation for c in mine):
            mine.append(conversation)
        key = conversation.thread_key
        if key:
            current = self.by_key.get(key)
            if current is None or conversation.last_message_at >= current.last_message_at:
                self.by_key[key] = conversation


def receive_batch(entries: list[tuple[Inbox | str, InboundMessage]]) -> list[dict]:
    """Receive ``entries`` ((inbox or an error text, message) pairs); one result per entry.

    A result is ``{"index", "status": created|duplicate|error, "conversation_id",
    "message_id", "error"}``. Items fail alone: a bad one never stops the others.
    """
    results: list[dict | None] = [None] * len(entries)
    items = _prepare_all(entries, results)
    if items:
        ticket = _Ticket(items, entries=entries, results=results)
        _submit(ticket)
        results = ticket.results
    return [r for r in results if r is not None]


def _receive_items(items: list[_Item], initial: list[dict | None]) -> list[dict | None] | None:
    """Store ``items`` in bulk; ``initial`` holds the results known already (errors).

    Returns the results by index, or None when the batch kept losing races (the caller then
    receives the items one by one). The created items keep their stored objects.
    """
    for _attempt in range(BULK_ATTEMPTS):
        results = list(initial)
        for item in items:
            item.reset()
        fresh = _drop_duplicates(items, results)
        if fresh:
            try:
                with transaction.atomic():
                    _store(fresh)
            except (IntegrityError, OperationalError) as exc:
                if not _lost_race(exc):
                    raise
                logger.info("batch raced a concurrent writer (%s); trying again", exc)
                continue
            for item in fresh:
                results[item.index] = _result(item, "created")
        _resolve_in_batch_duplicates(items, results)
        return results
    logger.warning("batch lost %d races in a row; receiving item by item", BULK_ATTEMPTS)
    return None


BULK_ATTEMPTS = 3
# PostgreSQL: deadlock_detected, serialization_failure.
_RACE_SQLSTATES = {"40P01", "40001"}


def _lost_race(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    return getattr(exc.__cause__, "sqlstate", None) in _RACE_SQLSTATES


def _error(index: int, message: str) -> dict:
    return {"index": index, "status": "error", "error": message}


def _result(item: _Item, status: str) -> dict:
    assert item.message is not None
    return {
        "index": item.index,
        "status": status,
        "conversation_id": item.message.conversation_id,
        "message_id": item.message.pk,
    }


def _prepare_all(entries: list[tuple[Inbox | str, InboundMessage]], results: list) -> list[_Item]:
    items = []
    now = timezone.now()
    for index, (inbox, inbound) in enumerate(entries):
        if isinstance(inbox, str):
            results[index] = _error(index, inbox)
            continue
        try:
            prepared = prepare(inbox, inbound)
        except KefuError as exc:
            results[index] = _error(index, exc.message)
            continue
        if not prepared.identities:
            results[index] = _error(
                index, "a message needs at least one customer identity (email, phone or id)"
            )
            continue
        items.append(_Item(index, inbox, prepared, inbound.sent_at or now))
    return items


def _drop_duplicates(items: list[_Item], results: list) -> list[_Item]:
    """Answer items already stored (earlier calls) and set aside repeats within the batch."""
    fresh: list[_Item] = []
    seen: set[tuple[int, str]] = set()
    stored = _stored_ids(items)
    for item in items:
        key = (item.inbox.pk, item.prepared.inbound.external_id or "")
        if key[1] and key in stored:
            message_id, conversation_id = stored[key]
            results[item.index] = {
                "index": item.index,
                "status": "duplicate",
                "conversation_id": conversation_id,
                "message_id": message_id,
            }
        elif key[1] and key in seen:
            continue  # answered after the first one is stored
        else:
            seen.add(key)
            fresh.append(item)
    return fresh


def _stored_ids(items: list[_Item]) -> dict[tuple[int, str], tuple[int, int]]:
    wanted: dict[int, set[str]] = defaultdict(set)
    for item in items:
        if item.prepared.inbound.external_id:
            wanted[item.inbox.pk].add(item.prepared.inbound.external_id)
    if not wanted:
        return {}
    condition = Q()
    for inbox_id, ids in wanted.items():
        condition |= Q(inbox_id=inbox_id, external_id__in=ids)
    rows = Message.objects.filter(condition).values_list(
        "inbox_id", "external_id", "pk", "conversation_id"
    )
    return {(i, e or ""): (pk, c) for i, e, pk, c in rows}


def _resolve_in_batch_duplicates(items: list[_Item], results: list) -> None:
    first: dict[tuple[int, str], dict] = {}
    for item in items:
        key = (item.inbox.pk, item.prepared.inbound.external_id or "")
        result = results[item.index]
        if result is not None and result["status"] != "error":
            first.setdefault(key, result)
    for item in items:
        if results[item.index] is None:
            original = first[(item.inbox.pk, item.prepared.inbound.external_id or "")]
            results[item.index] = {**original, "index": item.index, "status": "duplicate"}


def _one_by_one(entries: list[tuple[Inbox | str, InboundMessage]]) -> list[dict]:
    results = []
    for index, (inbox, inbound) in enumerate(entries):
        if isinstance(inbox, str):
            results.append(_error(index, inbox))
            continue
        try:
            # The direct path: this may run for other requests' messages (see Combiner).
            received = receive_prepared(inbox, prepare(inbox, inbound))
        except KefuError as exc:
            results.append(_error(index, exc.message))
            continue
        results.append(
            {
                "index": index,
                "status": "created" if received.created else "duplicate",
                "conversation_id": received.conversation.pk,
                "message_id": received.message.pk,
            }
        )
    return results


# --- storing ---------------------------------------------------------------------------------


def _store(items: list[_Item]) -> None:
    new_customers = _resolve_customers(items)
    threads = _load_threads(items, {c.pk for c in new_customers})
    for item in items:
        _thread(item, threads)
    _write(items, new_customers)


def _resolve_customers(items: list[_Item]) -> list[Customer]:
    """Give each item its customer (known, or new in memory); queue identities to link."""
    owners = _known_owners(items)
    unknown = {(r.kind, r.value) for i in items for r in i.prepared.identities} - owners.keys()
    if unknown and _claim(unknown):
        # A batch that held one of them has committed meanwhile: its customers are ours too.
        live = {customer.pk: customer for customer in owners.values()}
        for key, customer in _known_owners_of(unknown).items():
            owners[key] = live.setdefault(customer.pk, customer)
    new_customers: list[Customer] = []
    links: list[tuple[Customer, IdentityRef]] = []
    for item in items:
        refs = item.prepared.identities
        known = [owners[(r.kind, r.value)] for r in refs if (r.kind, r.value) in owners]
        if known:
            customer = known[0]
        else:
            customer = Customer(
                name=item.prepared.inbound.customer_name[:200],
                language=item.prepared.enriched.get("language", ""),
                **_contact_fields(refs),
            )
            new_customers.append(customer)
        for ref in refs:
            if (ref.kind, ref.value) not in owners:
                owners[(ref.kind, ref.value)] = customer
                links.append((customer, ref))
        _fill_contact(customer, refs, item.prepared.inbound.customer_name)
        item.customer = customer
    insert_many(new_customers)
    links.sort(key=lambda link: (link[1].kind, link[1].value))  # a stable lock order
    insert_many([Identity(customer=c, kind=r.kind, value=r.value) for c, r in links])
    _save_filled_contacts(items, set(map(id, new_customers)))
    return new_customers


# Two concurrent batches naming the same new person both create a customer and an identity;
# the second one's insert then waits for the first to commit and fails (unique violation), and
# the whole batch is rolled back and stored again. With bench/ingest.py's customer pool that
# was most PostgreSQL batches (84 retries in 20 s), a fifth of the time spent waiting on a lock
# and the work of each failed attempt thrown away. A batch therefore claims the identities it
# is about to create (transaction-scoped advisory locks, in one sorted order, before any row
# lock) and reads their owners again once it holds them.
_IDENTITY_LOCKS = 0x4B454655  # "KEFU": the advisory-lock namespace of new identities


def _claim(keys: set[tuple[str, str]]) -> bool:
    """Hold a lock per new identity until commit (PostgreSQL); True when the owners must be
    read again. SQLite has one writer at a time: nothing to claim."""
    connection = transaction.get_connection()
    if connection.vendor != "postgresql":
        return False
    hashes = sorted({_lock_hash(kind, value) for kind, value in keys})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(%s, h)) FROM "
            "(SELECT h FROM unnest(%s::int4[]) AS h ORDER BY h) AS sorted",
            [_IDENTITY_LOCKS, hashes],
        )
    return True


def _lock_hash(kind: str, value: str) -> int:
    digest = hashlib.blake2b(f"{kind}:{value}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def _known_owners(items: list[_Item]) -> dict[tuple[str, str], Customer]:
    return _known_owners_of({(r.kind, r.value) for i in items for r in i.prepared.identities})


def _known_owners_of(keys: set[tuple[str, str]]) -> dict[tuple[str, str], Customer]:
    by_kind: dict[str, set[str]] = defaultdict(set)
    for kind, value in keys:
        by_kind[kind].add(value)
    condition = Q()
    for kind, values in by_kind.items():
        condition |= Q(kind=kind, value__in=values)
    # The customer fields the batch and its store hooks read (contact fields, the search
    # entry's version); notes, tags and the rest stay deferred.
    rows = (
        Identity.objects.filter(condition)
        .select_related("customer")
        .only("kind", "value", *(f"customer__{name}" for name in _CUSTOMER_FIELDS))
    )
    owners = {(i.kind, i.value): i.customer for i in rows}
    live: dict[int, Customer] = {}
    for key, customer in owners.items():
        owners[key] = live.setdefault(customer.pk, _follow_customer(customer))
    return owners


_CUSTOMER_FIELDS = ("id", "name", "email", "phone", "merged_into_id", "updated_at")


def _follow_customer(customer: Customer) -> Customer:
    seen: set[int] = set()
    while customer.merged_into_id is not None and customer.pk not in seen:
        seen.add(customer.pk)
        customer = Customer.objects.only(*_CUSTOMER_FIELDS).get(pk=customer.merged_into_id)
    return customer


def _fill_contact(customer: Customer, refs: list[IdentityRef], name: str) -> None:
    """Fill a known customer's empty name, email and phone, as resolve_customer does."""
    if name and not customer.name:
        customer.name = name[:200]
        customer._kefu_filled = True  # type: ignore[attr-defined]
    for key, value in _contact_fields(refs).items():
        if not getattr(customer, key):
            setattr(customer, key, value)
            customer._kefu_filled = True  # type: ignore[attr-defined]


def _save_filled_contacts(items: list[_Item], new_ids: set[int]) -> None:
    filled = {
        id(item.customer): item.customer
        for item in items
        if item.customer is not None
        and id(item.customer) not in new_ids
        and getattr(item.customer, "_kefu_filled", False)
    }
    if filled:
        now = timezone.now()
        for customer in filled.values():
            customer.updated_at = now
        Customer.objects.bulk_update(
            list(filled.values()), ["name", "email", "phone", "updated_at"]
        )


def _load_threads(items: list[_Item], new_customer_ids: set[int]) -> dict[int, _Threads]:
    """Lock and load every stored conversation an item of the batch may thread into."""
    threads: dict[int, _Threads] = defaultdict(_Threads)
    per_inbox: dict[int, list[_Item]] = defaultdict(list)
    for item in items:
        per_inbox[item.inbox.pk].append(item)
    for inbox_id, inbox_items in per_inbox.items():
        _load_inbox_threads(inbox_id, inbox_items, threads[inbox_id], new_customer_ids)
    return threads


def _live_conversations():  # type: ignore[no-untyped-def]
    """Open conversations, locked in id order (a stable lock order across batches)."""
    return (
        Conversation.objects.select_for_update()
        .filter(merged_into__isnull=True)
        .exclude(status=Status.CLOSED)
        .only(*_THREAD_FIELDS, "thread_key")
        .order_by("pk")
    )


def _load_inbox_threads(
    inbox_id: int, items: list[_Item], into: _Threads, new_customer_ids: set[int]
) -> None:
    references = {r for item in items for r in item.prepared.inbound.references[-50:]}
    if references:
        _load_references(inbox_id, references, into)
    keys = {item.prepared.inbound.thread_key for item in items if item.prepared.inbound.thread_key}
    if keys:
        keyed = _live_conversations().filter(inbox_id=inbox_id, thread_key__in=keys)
        for conversation in sorted(keyed, key=lambda c: (c.last_message_at, c.pk)):
            into.by_key[conversation.thread_key] = into.one(conversation)  # latest wins
    # A customer created by this batch has no stored conversation yet.
    customer_ids = {item.customer.pk for item in items if item.customer} - new_customer_ids
    if customer_ids:
        earliest = min(item.sent_at for item in items) - _window(items[0].inbox)
        recent = _live_conversations().filter(
            inbox_id=inbox_id, customer_id__in=customer_ids, last_message_at__gte=earliest
        )
        for conversation in recent:
            into.by_customer[conversation.customer_id].append(into.one(conversation))


def _load_references(inbox_id: int, references: set[str], into: _Threads) -> None:
    rows = Message.objects.filter(inbox_id=inbox_id, external_id__in=references).values_list(
        "external_id", "conversation_id", "sent_at"
    )
    newest: dict[str, tuple[int, datetime]] = {r[0] or "": (r[1], r[2]) for r in rows}
    if not newest:
        return
    ids = {conversation_id for conversation_id, _ in newest.values()}
    targets = Conversation.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    loaded = {c.pk: c for c in targets.only(*_THREAD_FIELDS, "thread_key", "status")}
    for external_id, (conversation_id, sent_at) in newest.items():
        target = into.one(_follow_conversation(loaded[conversation_id]))
        into.by_reference[external_id] = (target, sent_at)


def _follow_conversation(conversation: Conversation) -> Conversation:
    seen: set[int] = set()
    while conversation.merged_into_id is not None and conversation.pk not in seen:
        seen.add(conversation.pk)
        conversation = (
            Conversation.objects.select_for_update()
            .only(*_THREAD_FIELDS, "thread_key", "status")
            .get(pk=conversation.merged_into_id)
        )
    return conversation


def _thread(item: _Item, all_threads: dict[int, _Threads]) -> None:
    """Pick the item's conversation (same precedence as find_thread) and apply the message."""
    threads = all_threads[item.inbox.pk]
    inbound = item.prepared.inbound
    conversation = _by_reference(inbound.references, threads)
    if conversation is None and inbound.thread_key:
        conversation = threads.by_key.get(inbound.thread_key)
    if conversation is None:
        conversation = _recent_for(item, threads)
    created = conversation is None
    if conversation is None:
        conversation = _new_conversation(item)
    item.conversation, item.conversation_created = conversation, created
    item.message = _message(item, conversation)
    item.message._kefu_events = summarize_inbound(  # type: ignore[attr-defined]
        conversation, item.message, item.prepared.text, created
    )
    threads.remember(conversation)
    if inbound.external_id:
        threads.by_reference[inbound.external_id] = (conversation, item.sent_at)


def _by_reference(references: list[str], threads: _Threads) -> Conversation | None:
    """The conversation of the newest referenced message, unless it is closed (as find_thread)."""
    hits = [threads.by_reference[r] for r in references[-50:] if r in threads.by_reference]
    if not hits:
        return None
    conversation, _ = max(hits, key=lambda hit: hit[1])
    return None if conversation.status == Status.CLOSED else conversation


def _recent_for(item: _Item, threads: _Threads) -> Conversation | None:
    assert item.customer is not None and item.customer.pk is not None
    cutoff = item.sent_at - _window(item.inbox)
    candidates = [
        c
        for c in threads.by_customer.get(item.customer.pk, [])
        if c.last_message_at >= cutoff and c.status != Status.CLOSED
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c.last_message_at, c.pk or 0))


def _new_conversation(item: _Item) -> Conversation:
    inbound = item.prepared.inbound
    return Conversation(
        inbox=item.inbox,
        store_id=item.inbox.store_id,
        customer=item.customer,
        subject=(inbound.subject or _preview(item.prepared.text))[:300],
        status=Status.NEW,
        language=item.prepared.enriched.get("language", ""),
        thread_key=inbound.thread_key[:200],
        last_message_at=item.sent_at,
    )


def _message(item: _Item, conversation: Conversation) -> Message:
    inbound = item.prepared.inbound
    return Message(
        conversation=conversation,
        inbox=item.inbox,
        direction=Direction.INBOUND,
        author_kind=AuthorKind.CUSTOMER,
        subject=inbound.subject[:300],
        text=item.prepared.text,
        html=item.prepared.html,
        language=item.prepared.enriched.get("language", ""),
        external_id=inbound.external_id,
        sent_at=item.sent_at,
        metadata=inbound.metadata,
    )


def _write(items: list[_Item], new_customers: list[Customer]) -> None:
    now = timezone.now()
    created = [i.conversation for i in items if i.conversation_created]
    existing = {id(i.conversation): i.conversation for i in items if not i.conversation_created}
    insert_many(created)  # type: ignore[arg-type]
    messages = [i.message for i in items]
    insert_many(messages)  # type: ignore[arg-type]
    for conversation in existing.values():
        conversation.updated_at = now  # type: ignore[union-attr]
    if existing:
        update_many(list(existing.values()), _INBOUND_FIELDS)  # type: ignore[arg-type]
    insert_many([e for m in messages for e in m._kefu_events])  # type: ignore[union-attr]
    for item in items:
        if item.prepared.inbound.attachments:
            _store_attachments(item.message, item.prepared.inbound)  # type: ignore[arg-type]
    run_store_hooks([(i.message, i.conversation, i.customer, i.prepared) for i in items])  # type: ignore[misc]
    _announce(items, new_customers)


def _announce(items: list[_Item], new_customers: list[Customer]) -> None:
    for customer in new_customers:
        emit("customer.created", customer_id=customer.pk)
    for item in items:
        conversation, message = item.conversation, item.message
        assert conversation is not None and message is not None
        if item.conversation_created:
            emit(
                "conversation.created",
                conversation_id=conversation.pk,
                inbox_id=conversation.inbox_id,
            )
        emit(
            "message.received",
            conversation_id=conversation.pk,
            message_id=message.pk,
            inbox_id=conversation.inbox_id,
        )


# --- combining concurrent writes ---------------------------------------------------------------


@dataclass(eq=False)
class _Ticket:
    """Work queued for the Combiner: one single message, or the valid items of one batch."""

    items: list[_Item]
    single: bool = False
    # A batch: its entries (to receive one by one if need be) and its results by entry index.
    entries: list[tuple[Inbox | str, InboundMessage]] = field(default_factory=list)
    results: list[dict | None] = field(default_factory=list)
    # A single message: its answer.
    outcome: ReceiveResult | None = None
    error: BaseException | None = None
    answered: bool = False
    lead: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class Combiner:
    """Makes one thread of a process write at a time, for the messages of many requests.

    A server thread with messages to store (one, or a batch) queues them. If no write is
    running, that thread becomes the leader: it takes what is queued (its own first, up to
    ``limit`` messages), stores it in one transaction through the bulk path, hands each thread
    its results, passes the lead to the oldest work still queued, and returns. A single message
    alone takes the direct single path, so without concurrency nothing changes; under load one
    transaction (one commit, a dozen queries) serves many requests, and requests never compete
    for the same rows or for SQLite's write lock inside a process. The stored state is the same
    either way (the bulk path follows the single path's rules: tests/conversations/
    test_batch.py). Work whose bulk write fails for another reason than a lost race is
    received again message by message, so one message's error never becomes its neighbours'.
    """

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._queue: list[_Ticket] = []
        self._running = False

    def receive_one(self, inbox: Inbox, prepared: _Prepared) -> ReceiveResult:
        sent_at = prepared.inbound.sent_at or timezone.now()
        ticket = _Ticket([_Item(0, inbox, prepared, sent_at)], single=True)
        self.receive(ticket)
        assert ticket.outcome is not None
        return ticket.outcome

    def receive(self, ticket: _Ticket) -> None:
        """Store ``ticket``'s work (maybe with others'); its answer is on the ticket."""
        with self._lock:
            self._queue.append(ticket)
            ticket.lead = not self._running
            self._running = True
        while True:
            if ticket.lead:
                ticket.lead = False
                self._lead()
            if ticket.answered:
                break
            ticket.done.wait()
            ticket.done.clear()
        if ticket.error is not None:
            raise ticket.error

    def _lead(self) -> None:
        with self._lock:
            taken = [self._queue.pop(0)]
            size = len(taken[0].items)
            while self._queue and size + len(self._queue[0].items) <= self.limit:
                size += len(self._queue[0].items)
                taken.append(self._queue.pop(0))
        try:
            _run_tickets(taken)
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.done.set()
                else:
                    self._running = False


def _run_tickets(tickets: list[_Ticket]) -> None:
    try:
        if len(tickets) > 1 or not tickets[0].single:
            _run_bulk(tickets)
        for ticket in tickets:
            if not ticket.answered:
                _run_alone(ticket)
    except BaseException as exc:
        for ticket in tickets:
            if not ticket.answered:
                ticket.error = exc
        raise
    finally:
        for ticket in tickets:
            ticket.answered = True
            ticket.done.set()


def _run_bulk(tickets: list[_Ticket]) -> None:
    """Store the tickets' items in one batch; a ticket left unanswered goes on alone."""
    merged: list[_Item] = []
    owners: list[tuple[_Ticket, int]] = []
    for ticket in tickets:
        for item in ticket.items:
            owners.append((ticket, item.index))
            merged.append(replace(item, index=len(merged)))
    try:
        results = _receive_items(merged, [None] * len(merged))
    except Exception:
        logger.exception("a bulk write of %d messages failed; receiving them apart", len(merged))
        return
    if results is None:
        return
    for (ticket, index), item, result in zip(owners, merged, results, strict=True):
        assert result is not None
        if not ticket.single:
            ticket.results[index] = {**result, "index": index}
        elif result["status"] == "created":
            assert item.message is not None and item.conversation is not None
            ticket.outcome = ReceiveResult(
                message=item.message,
                conversation=item.conversation,
                created=True,
                conversation_created=item.conversation_created,
            )
        # A single duplicate goes on alone: the direct path answers with the stored objects.
    for ticket in tickets:
        ticket.answered = not ticket.single or ticket.outcome is not None


def _run_alone(ticket: _Ticket) -> None:
    try:
        if ticket.single:
            item = ticket.items[0]
            ticket.outcome = receive_prepared(item.inbox, item.prepared)
        else:
            ticket.results = list(_one_by_one(ticket.entries))
    except BaseException as exc:  # raised again in the ticket's own thread
        ticket.error = exc
    ticket.answered = True


_combiner = Combiner()


def _submit(ticket: _Ticket) -> None:
    if transaction.get_connection().in_atomic_block:
        # Inside the caller's transaction: stored within it, never by another thread.
        _run_tickets([ticket])
        if ticket.error is not None:
            raise ticket.error
    else:
        _combiner.receive(ticket)


def combine(inbox: Inbox, prepared: _Prepared) -> ReceiveResult:
    """``receive_prepared`` through this process's Combiner (call outside any transaction)."""
    return _combiner.receive_one(inbox, prepared)
