"""The inbound pipeline: every message from every channel goes through ``receive_message``.

Order of work (one transaction):
1. idempotency: (inbox, external_id) is stored once, whatever the retries;
2. identity resolution: the customer owning any of the message's identities, or a new one;
3. threading: explicit reference > chat/thread key > the customer's recent conversation in the
   inbox within the window (a solved one reopens) > a new conversation;
4. enrichment hooks (language now; intent, entities, sentiment later);
5. the message row, the conversation's denormalized fields, the timeline event;
6. after commit: ``conversation.created`` and ``message.received`` domain events.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import nh3
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from kefu.conversations import enrichment
from kefu.conversations.inbound import InboundMessage
from kefu.conversations.models import (
    AuthorKind,
    Conversation,
    ConversationEvent,
    Direction,
    EventKind,
    Inbox,
    Message,
    Status,
)
from kefu.core.errors import InvalidInput
from kefu.core.events import emit
from kefu.core.sanitize import sanitize_html
from kefu.customers.actions import find_identities, resolve_customer
from kefu.customers.identities import IdentityRef, normalize, phone_region
from kefu.customers.models import Customer

MAX_TEXT_CHARS = 200_000
MAX_EXTERNAL_ID = 255
MAX_THREAD_KEY = 200
PREVIEW_CHARS = 200


@dataclass(frozen=True, slots=True)
class ReceiveResult:
    message: Message
    conversation: Conversation
    created: bool
    """False when this delivery was a duplicate of one already stored."""
    conversation_created: bool = False


@dataclass(slots=True)
class _Prepared:
    """An inbound message validated and normalized, before any database work."""

    inbound: InboundMessage
    identities: list[IdentityRef]
    text: str
    html: str
    enriched: dict
    # What other apps' prepare hooks computed for their store hooks (see on_inbound_prepared).
    extras: dict[str, Any] = field(default_factory=dict)


# Other apps' work on each inbound message, registered at start-up (AppConfig.ready):
# - a prepare hook runs in ``prepare``, before any database work and outside the write
#   transaction (search analyzes the text there);
# - a store hook runs inside the transaction that stores the messages, after their rows are
#   written, with (message, conversation, prepared) triples (search writes its entries there, so
#   they need no second transaction, no read back and no second turn at SQLite's write lock).
# A store hook must not fail the store: it guards its own work (a savepoint) and leaves
# anything it could not do to its after-commit repair.
StoredInbound = tuple[Message, Conversation, Customer, "_Prepared"]
_prepare_hooks: list[Callable[[_Prepared], None]] = []
_store_hooks: list[Callable[[list[StoredInbound]], None]] = []


def on_inbound_prepared(hook: Callable[[_Prepared], None]) -> Callable[[_Prepared], None]:
    if hook not in _prepare_hooks:
        _prepare_hooks.append(hook)
    return hook


def on_inbound_stored(
    hook: Callable[[list[StoredInbound]], None],
) -> Callable[[list[StoredInbound]], None]:
    if hook not in _store_hooks:
        _store_hooks.append(hook)
    return hook


def run_store_hooks(stored: list[StoredInbound]) -> None:
    for hook in _store_hooks:
        hook(stored)


def prepare(inbox: Inbox, inbound: InboundMessage) -> _Prepared:
    """Validate and normalize without touching the database. Raises InvalidInput."""
    _drop_nul(inbound)
    inbound.sent_at = _checked_time(inbound.sent_at)
    if inbound.external_id is not None:
        inbound.external_id = inbound.external_id.strip()
        if not inbound.external_id or len(inbound.external_id) > MAX_EXTERNAL_ID:
            raise InvalidInput("external_id must be 1 to 255 characters", field="external_id")
    # Stored in 200 characters: compare what is stored, or a longer key never threads again.
    inbound.thread_key = inbound.thread_key[:MAX_THREAD_KEY]
    country = inbox.store.country if inbox.store_id and inbox.store else None
    region = phone_region(country, settings.KEFU_DEFAULT_PHONE_REGION)
    identities = _unique([normalize(k, v, default_region=region) for k, v in inbound.identities])
    html = sanitize_html(inbound.html) if inbound.html else ""
    text = inbound.text or (text_from_html(html) if html else "")
    if not text.strip() and not inbound.attachments:
        raise InvalidInput("a message needs text, html or an attachment", field="text")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInput(f"text longer than {MAX_TEXT_CHARS} characters", field="text")
    prepared = _Prepared(inbound, identities, text, html, _enrich(text))
    for hook in _prepare_hooks:
        hook(prepared)
    return prepared


# Where a line breaks in rendered HTML (a block starts or ends); a cell ends with a space.
# (core.sanitize.html_to_text glued "<p>Hello</p><p>World</p>" into "HelloWorld" and left
# "&amp;" escaped.)
_LINE_END = re.compile(
    r"<(?:br|hr)\b[^>]*>|</?(?:p|div|li|tr|h[1-6]|blockquote|pre|table|ul|ol|dd|dt)\b[^>]*>", re.I
)
_CELL_END = re.compile(r"</t[dh]\s*>", re.I)


def text_from_html(clean_html: str) -> str:
    """Readable plain text of sanitized HTML: one line per block, spaces folded, entities decoded.

    The text is what previews, search, language detection and entity extraction read.
    """
    marked = _CELL_END.sub(" ", _LINE_END.sub("\n", clean_html))
    plain = unescape(nh3.clean(marked, tags=set(), attributes={}))
    lines = (" ".join(line.split()) for line in plain.splitlines())
    return "\n".join(line for line in lines if line)


# Before this, a date is an error (a zeroed or unset provider field), not a real message; it
# would also overflow the threading window's arithmetic (a 500).
EARLIEST_SENT_AT = datetime(1970, 1, 1, tzinfo=UTC)


def _checked_time(sent_at: datetime | None) -> datetime | None:
    if sent_at is None:
        return None
    if timezone.is_naive(sent_at):
        sent_at = timezone.make_aware(sent_at, UTC)  # a naive provider time is UTC
    if sent_at < EARLIEST_SENT_AT:
        raise InvalidInput("sent_at must be after 1970-01-01", field="sent_at")
    return sent_at


def _drop_nul(inbound: InboundMessage) -> None:
    """Remove NUL characters: PostgreSQL text cannot hold them (a 500 there, not on SQLite).

    Broken mailers and providers do send them, and they carry nothing a person reads.
    """
    for name in ("external_id", "text", "html", "subject", "customer_name", "thread_key"):
        value = getattr(inbound, name)
        if value and "\x00" in value:
            setattr(inbound, name, value.replace("\x00", ""))
    if any("\x00" in ref for ref in inbound.references):
        inbound.references = [ref.replace("\x00", "") for ref in inbound.references]
    if inbound.metadata:
        inbound.metadata = _without_nul(inbound.metadata)


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


_first_enrichment = threading.Lock()
_enrichment_loaded = False


def _enrich(text: str) -> dict:
    """The enrichment hooks; the first call runs alone.

    Hooks load their models on first use (the language model takes half a second). In a
    threaded server, a burst of first requests would otherwise load it in every thread at once,
    which under the GIL stalls the process for many seconds.
    """
    global _enrichment_loaded
    if not _enrichment_loaded:
        with _first_enrichment:
            fields = enrichment.enrich(text)
            _enrichment_loaded = True
            return fields
    return enrichment.enrich(text)


def _unique(refs: list[IdentityRef]) -> list[IdentityRef]:
    return list(dict.fromkeys(refs))


def receive_message(*, inbox: Inbox, message: InboundMessage) -> ReceiveResult:
    """Store one inbound message exactly once and thread it. Raises InvalidInput on bad input.

    Outside a transaction, messages that arrive at the same moment in several threads of one
    process (a threaded server under load) are stored together in one bulk transaction, with
    the same result (kefu.conversations.batch.Combiner); inside one, always directly.
    """
    prepared = prepare(inbox, message)
    if prepared.identities and not transaction.get_connection().in_atomic_block:
        from kefu.conversations.batch import combine  # batch builds on this module

        return combine(inbox, prepared)
    return receive_prepared(inbox, prepared)


def receive_prepared(inbox: Inbox, prepared: _Prepared) -> ReceiveResult:
    """The direct single-message path for a message ``prepare`` accepted."""
    # Read what can be read safely before the write transaction: on SQLite the write lock is
    # held from BEGIN to COMMIT, so every query moved out of it shortens other writers' wait.
    # The unique index on (inbox, external_id) settles a duplicate that slips in meanwhile.
    duplicate = _existing(inbox, prepared.inbound.external_id)
    if duplicate is not None:
        return duplicate
    found = find_identities(prepared.identities)
    try:
        with transaction.atomic():
            return _receive_prepared(inbox, prepared, found)
    except IntegrityError:
        # A concurrent delivery of the same external id won the race: answer with its result.
        existing = _existing(inbox, prepared.inbound.external_id)
        if existing is None:
            raise
        return existing


def _existing(inbox: Inbox, external_id: str | None) -> ReceiveResult | None:
    if external_id is None:
        return None
    hit = (
        Message.objects.filter(inbox=inbox, external_id=external_id)
        .values_list("pk", flat=True)
        .first()
    )
    if hit is None:
        return None
    found = Message.objects.select_related("conversation").get(pk=hit)
    return ReceiveResult(message=found, conversation=found.conversation, created=False)


def _receive_prepared(inbox: Inbox, prepared: _Prepared, found: list) -> ReceiveResult:
    inbound = prepared.inbound
    customer = resolve_customer(
        identities=prepared.identities,
        name=inbound.customer_name,
        language=prepared.enriched.get("language", ""),
        found=found,
    )
    sent_at = inbound.sent_at or timezone.now()
    conversation = find_thread(inbox=inbox, customer=customer, inbound=inbound, at=sent_at)
    created = conversation is None
    if conversation is None:
        conversation = _new_conversation(inbox, customer, prepared, sent_at)
    stored = Message(
        conversation=conversation,
        inbox=inbox,
        direction=Direction.INBOUND,
        author_kind=AuthorKind.CUSTOMER,
        subject=inbound.subject[:300],
        text=prepared.text,
        html=prepared.html,
        language=prepared.enriched.get("language", ""),
        external_id=inbound.external_id,
        sent_at=sent_at,
        metadata=inbound.metadata,
    )
    events = summarize_inbound(conversation, stored, prepared.text, created)
    # A new conversation is inserted once, with its summary already filled in.
    conversation.save(update_fields=None if created else _INBOUND_FIELDS)
    stored.save()
    ConversationEvent.objects.bulk_create(events)
    _store_attachments(stored, inbound)
    run_store_hooks([(stored, conversation, customer, prepared)])
    _announce(conversation, stored, created)
    return ReceiveResult(
        message=stored, conversation=conversation, created=True, conversation_created=created
    )


# A longer window is a configuration slip; clamped so the date arithmetic cannot overflow.
MAX_WINDOW_HOURS = 10 * 366 * 24


def _window(inbox: Inbox) -> timedelta:
    hours = inbox.thread_window_hours
    if hours is None:
        hours = settings.KEFU_THREAD_WINDOW_HOURS
    return timedelta(hours=min(hours, MAX_WINDOW_HOURS))


def find_thread(
    *, inbox: Inbox, customer: Customer, inbound: InboundMessage, at
) -> Conversation | None:
    """The conversation ``inbound`` belongs to, locked for update; None means start a new one."""
    # Only the columns the pipeline updates: a narrower row is measurably cheaper to build.
    live = (
        Conversation.objects.select_for_update()
        .filter(merged_into__isnull=True)
        .only(*_THREAD_FIELDS)
    )
    if inbound.references:
        referenced = (
            Message.objects.filter(inbox=inbox, external_id__in=inbound.references[-50:])
            .order_by("-sent_at")
            .values_list("conversation_id", flat=True)
            .first()
        )
        if referenced is not None:
            target = _follow_merges(referenced)
            # A closed conversation stays closed: the reply starts a new one.
            if target.status != Status.CLOSED:
                return target
    if inbound.thread_key:
        keyed = (
            live.filter(inbox=inbox, thread_key=inbound.thread_key)
            .exclude(status=Status.CLOSED)
            .order_by("-last_message_at")
            .first()
        )
        if keyed is not None:
            return keyed
    cutoff = at - _window(inbox)
    return (
        live.filter(inbox=inbox, customer=customer, last_message_at__gte=cutoff)
        .exclude(status=Status.CLOSED)
        .order_by("-last_message_at", "-id")
        .first()
    )


def _follow_merges(conversation_id: int) -> Conversation:
    seen: set[int] = set()
    current = Conversation.objects.select_for_update().get(pk=conversation_id)
    while current.merged_into_id is not None and current.pk not in seen:
        seen.add(current.pk)
        current = Conversation.objects.select_for_update().get(pk=current.merged_into_id)
    return current


def _new_conversation(
    inbox: Inbox, customer: Customer, prepared: _Prepared, sent_at
) -> Conversation:
    """A new conversation, not saved yet (the caller saves it with its summary)."""
    inbound = prepared.inbound
    return Conversation(
        inbox=inbox,
        store_id=inbox.store_id,
        customer=customer,
        subject=(inbound.subject or _preview(prepared.text))[:300],
        status=Status.NEW,
        language=prepared.enriched.get("language", ""),
        thread_key=inbound.thread_key[:200],
        last_message_at=sent_at,
    )


def _preview(text: str) -> str:
    return " ".join(text.split())[:PREVIEW_CHARS]


def summarize_inbound(
    conversation: Conversation, message: Message, text: str, created: bool
) -> list[ConversationEvent]:
    """Apply a new inbound message to the conversation's fields (in memory, nothing saved).

    Returns the timeline events to store. Shared by the single and the batch paths, so both
    follow the same rules: pending/on-hold/solved go back to open (solved counts as reopened),
    the preview follows the newest message, the waiting clock starts at the first unanswered one.
    """
    reopened = conversation.status == Status.SOLVED
    previous_status = conversation.status
    if conversation.status in (Status.PENDING, Status.ON_HOLD, Status.SOLVED):
        conversation.status = Status.OPEN
    if reopened:
        conversation.solved_at = None
    if created or message.sent_at >= conversation.last_message_at:
        conversation.last_message_at = message.sent_at
        conversation.last_message_preview = _preview(text)
    conversation.last_inbound_at = max(
        filter(None, [conversation.last_inbound_at, message.sent_at])
    )
    if conversation.waiting_since is None:
        conversation.waiting_since = message.sent_at
    if not conversation.language and message.language:
        conversation.language = message.language
    conversation.unread_count += 1
    conversation.message_count += 1
    events = (
        [ConversationEvent(conversation=conversation, kind=EventKind.CREATED)] if created else []
    )
    events.append(
        ConversationEvent(conversation=conversation, kind=EventKind.MESSAGE_ADDED, message=message)
    )
    if previous_status != conversation.status:
        kind = EventKind.REOPENED if reopened else EventKind.STATUS_CHANGED
        events.append(
            ConversationEvent(
                conversation=conversation,
                kind=kind,
                data={"from": previous_status, "to": conversation.status, "by": "customer"},
            )
        )
    return events


_INBOUND_FIELDS = [
    "status",
    "solved_at",
    "last_message_at",
    "last_message_preview",
    "last_inbound_at",
    "waiting_since",
    "language",
    "unread_count",
    "message_count",
    "updated_at",
]


_THREAD_FIELDS = ["id", "inbox_id", "customer_id", "merged_into_id", *_INBOUND_FIELDS]


def _store_attachments(message: Message, inbound: InboundMessage) -> None:
    if not inbound.attachments:
        return
    from kefu.conversations.attachments import store_inbound_attachments

    store_inbound_attachments(message, inbound.attachments)


def _announce(conversation: Conversation, message: Message, created: bool) -> None:
    if created:
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
