"""Every write to conversations and messages goes through these functions.

Each action is keyword-only, validates and authorizes, writes in one transaction, appends a
ConversationEvent and emits a domain event after commit. Callers pass objects they obtained
through ``kefu.conversations.selectors`` (scoped to the acting agent).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

from django.db import transaction
from django.db.models import F, Max, Min, Q
from django.utils import timezone

from kefu.accounts.models import Agent, Role, Team
from kefu.conversations.attachments import store_inbound_attachments
from kefu.conversations.inbound import InboundAttachment
from kefu.conversations.models import (
    ACTIVE_STATUSES,
    AuthorKind,
    Conversation,
    ConversationEvent,
    ConversationMerge,
    DeliveryStatus,
    Direction,
    EventKind,
    Inbox,
    InboxMembership,
    Message,
    Priority,
    Status,
    Tag,
)
from kefu.conversations.pipeline import (
    PREVIEW_CHARS,
    ReceiveResult,
    receive_message,
    text_from_html,
)
from kefu.conversations.selectors import agent_can_access_inbox
from kefu.core.errors import Conflict, InvalidInput
from kefu.core.events import emit
from kefu.core.sanitize import sanitize_html

__all__ = [
    "ReceiveResult",
    "add_inbox_member",
    "add_note",
    "assign",
    "mark_read",
    "merge_conversations",
    "normalize_tag",
    "receive_message",
    "reply",
    "set_priority",
    "set_status",
    "tag",
    "unmerge_conversations",
    "untag",
]

MAX_REPLY_CHARS = 100_000


# On whose behalf the system acts (a rule, routing): while set, events written without an actor
# carry it in their data, so the timeline can say "by rule X". The innermost label wins (routing
# run by a rule is labelled as routing). Set through ``on_behalf_of``.
_system_label: ContextVar[dict[str, object] | None] = ContextVar("kefu_system_label", default=None)


@contextmanager
def on_behalf_of(label: dict[str, object]) -> Iterator[None]:
    """Label the actor-less events written inside this block with ``label``."""
    token = _system_label.set(label)
    try:
        yield
    finally:
        _system_label.reset(token)


def _event(
    conversation: Conversation,
    kind: str,
    actor: Agent | None,
    message: Message | None = None,
    **data: object,
) -> ConversationEvent:
    label = _system_label.get() if actor is None else None
    if label:
        data = {**label, **data}
    return ConversationEvent.objects.create(
        conversation=conversation, kind=kind, actor=actor, message=message, data=data
    )


def _locked(conversation: Conversation) -> Conversation:
    """Re-read ``conversation`` under a row lock so concurrent actions serialize."""
    return Conversation.objects.select_for_update().get(pk=conversation.pk)


def _lock_row(conversation: Conversation) -> None:
    """Take the conversation's row lock without reloading it (concurrent actions serialize)."""
    list(Conversation.objects.select_for_update().filter(pk=conversation.pk).values_list("pk"))


def _updated(conversation: Conversation, actor: Agent | None, **changes: object) -> None:
    emit(
        "conversation.updated",
        conversation_id=conversation.pk,
        inbox_id=conversation.inbox_id,
        actor_id=actor.pk if actor else None,
        changes=list(changes),
    )


def _body(text: str, html: str) -> tuple[str, str]:
    # PostgreSQL text cannot hold NUL (a 500 there); it carries nothing a person reads.
    clean_html = sanitize_html(html.replace("\x00", "")) if html else ""
    body = text.replace("\x00", "") or text_from_html(clean_html)
    if not body.strip():
        raise InvalidInput("the message is empty", field="text")
    if len(body) > MAX_REPLY_CHARS:
        raise InvalidInput(f"text longer than {MAX_REPLY_CHARS} characters", field="text")
    return body, clean_html


@transaction.atomic
def reply(
    *,
    conversation: Conversation,
    actor: Agent | None,
    text: str,
    html: str = "",
    status: str | None = None,
    author_kind: str = AuthorKind.AGENT,
    at: datetime | None = None,
    attachments: Sequence[InboundAttachment] = (),
) -> Message:
    """Queue a reply to the customer; a worker delivers it through the inbox's connector.

    Clears the waiting clock, records the first response time, and optionally sets ``status``
    (e.g. pending or solved) in the same transaction. ``attachments`` are stored with it (one
    over the inbox's size limit is recorded as refused, with the reason).
    """
    body, clean_html = _body(text, html)
    conversation = _locked(conversation)
    _refuse_merged(conversation)
    # ``at`` is for importing history (demo data, migrations from another helpdesk).
    now = at or timezone.now()
    message = Message.objects.create(
        conversation=conversation,
        inbox_id=conversation.inbox_id,
        direction=Direction.OUTBOUND,
        author_kind=author_kind,
        author_agent=actor,
        text=body,
        html=clean_html,
        delivery_status=DeliveryStatus.QUEUED,
        sent_at=now,
    )
    if attachments:
        store_inbound_attachments(message, attachments)
    conversation.last_message_at = now
    conversation.last_message_preview = " ".join(body.split())[:PREVIEW_CHARS]
    conversation.waiting_since = None
    conversation.unread_count = 0
    conversation.message_count += 1
    if conversation.first_response_at is None:
        conversation.first_response_at = now
    if conversation.status == Status.NEW:
        conversation.status = Status.OPEN
    conversation.save(
        update_fields=[
            "last_message_at",
            "last_message_preview",
            "waiting_since",
            "unread_count",
            "message_count",
            "first_response_at",
            "status",
            "updated_at",
        ]
    )
    _event(conversation, EventKind.REPLIED, actor, message)
    if status is not None:
        _set_status_locked(conversation, status, actor)
    emit("message.queued", message_id=message.pk, conversation_id=conversation.pk)
    _updated(conversation, actor, message=True)
    return message


@transaction.atomic
def add_note(
    *,
    conversation: Conversation,
    actor: Agent | None,
    text: str,
    at: datetime | None = None,
    attachments: Sequence[InboundAttachment] = (),
) -> Message:
    """An internal note: visible to agents only, never sent. ``@username`` mentions notify.

    ``actor`` None: a note by kefu itself (a rule, the delivery worker), authored "system".

    Only agents who may see the conversation's inbox are notified: a mention must not reveal a
    conversation to someone outside it.
    """
    body, _ = _body(text, "")
    conversation = _locked(conversation)
    _refuse_merged(conversation)
    now = at or timezone.now()
    note = Message.objects.create(
        conversation=conversation,
        inbox_id=conversation.inbox_id,
        direction=Direction.NOTE,
        author_kind=AuthorKind.AGENT if actor is not None else AuthorKind.SYSTEM,
        author_agent=actor,
        text=body,
        delivery_status=DeliveryStatus.SENT,
        sent_at=now,
    )
    if attachments:
        store_inbound_attachments(note, attachments)
    Conversation.objects.filter(pk=conversation.pk).update(
        message_count=F("message_count") + 1, updated_at=now
    )
    mentioned = _mentions(body, conversation.inbox_id)
    _event(conversation, EventKind.NOTE_ADDED, actor, note, mentions=mentioned)
    emit(
        "note.added",
        conversation_id=conversation.pk,
        message_id=note.pk,
        mentions=mentioned,
        actor_id=actor.pk if actor is not None else None,
    )
    _updated(conversation, actor, note=True)
    return note


def _mentions(text: str, inbox_id: int) -> list[int]:
    names = {word[1:].rstrip(".,:;!?") for word in text.split() if word.startswith("@")}
    if not names:
        return []
    can_see = (
        Q(is_superuser=True)
        | Q(role=Role.ADMIN)
        | Q(inboxes__pk=inbox_id)
        | Q(teams__inboxes__pk=inbox_id)
    )
    found = Agent.objects.filter(can_see, username__in=names, is_active=True)
    return sorted(set(found.values_list("pk", flat=True)))


def _refuse_merged(conversation: Conversation) -> None:
    if conversation.merged_into_id is not None:
        raise Conflict(
            f"this conversation was merged into #{conversation.merged_into_id}; write there"
        )


@transaction.atomic
def assign(
    *,
    conversation: Conversation,
    actor: Agent | None,
    assignee: Agent | None,
    team: Team | None = None,
    clear_team: bool = False,
) -> Conversation:
    """Give the conversation to ``assignee`` (None: unassign) and/or ``team``.

    ``team=None`` keeps the current team; ``clear_team=True`` removes it. Raises InvalidInput
    when the assignee cannot see the conversation's inbox.
    """
    conversation = _locked(conversation)
    if assignee is not None and not agent_can_access_inbox(assignee, conversation.inbox_id):
        raise InvalidInput(f"{assignee} has no access to this inbox", field="assignee")
    before = (conversation.assignee_id, conversation.team_id)
    conversation.assignee = assignee
    if team is not None:
        conversation.team = team
    elif clear_team:
        conversation.team = None
    if before == (conversation.assignee_id, conversation.team_id):
        return conversation
    conversation.save(update_fields=["assignee", "team", "updated_at"])
    _event(
        conversation,
        EventKind.ASSIGNED,
        actor,
        from_assignee=before[0],
        to_assignee=conversation.assignee_id,
        team=conversation.team_id,
    )
    emit(
        "conversation.assigned",
        conversation_id=conversation.pk,
        assignee_id=conversation.assignee_id,
        previous_assignee_id=before[0],
    )
    _updated(conversation, actor, assignee=True)
    return conversation


@transaction.atomic
def set_status(*, conversation: Conversation, actor: Agent | None, status: str) -> Conversation:
    conversation = _locked(conversation)
    _set_status_locked(conversation, status, actor)
    return conversation


def _set_status_locked(conversation: Conversation, status: str, actor: Agent | None) -> None:
    if status not in Status.values:
        raise InvalidInput(f"unknown status {status!r}", field="status")
    if conversation.merged_into_id is not None:
        raise Conflict("this conversation was merged; change the one it was merged into")
    previous = conversation.status
    if previous == status:
        return
    if previous == Status.CLOSED:
        raise Conflict("a closed conversation cannot change status")
    conversation.status = status
    if status in (Status.SOLVED, Status.CLOSED):
        conversation.solved_at = conversation.solved_at or timezone.now()
        # Nobody owes an answer any more; a later message starts the clock afresh.
        conversation.waiting_since = None
    else:
        conversation.solved_at = None
    conversation.save(update_fields=["status", "solved_at", "waiting_since", "updated_at"])
    _event(conversation, EventKind.STATUS_CHANGED, actor, None, **{"from": previous, "to": status})
    emit(
        "conversation.status_changed",
        conversation_id=conversation.pk,
        previous=previous,
        status=status,
    )
    _updated(conversation, actor, status=True)


@transaction.atomic
def set_priority(*, conversation: Conversation, actor: Agent | None, priority: str) -> Conversation:
    if priority not in Priority.values:
        raise InvalidInput(f"unknown priority {priority!r}", field="priority")
    conversation = _locked(conversation)
    previous = conversation.priority
    if previous == priority:
        return conversation
    conversation.priority = priority
    conversation.save(update_fields=["priority", "updated_at"])
    _event(
        conversation, EventKind.PRIORITY_CHANGED, actor, None, **{"from": previous, "to": priority}
    )
    _updated(conversation, actor, priority=True)
    return conversation


def normalize_tag(name: str) -> str:
    """A tag as stored: spaces folded, lower case, no NUL (which PostgreSQL refuses)."""
    return " ".join(str(name).replace("\x00", "").split()).lower()


def _clean_tags(names: Iterable[str]) -> list[str]:
    cleaned = []
    for name in names:
        value = normalize_tag(name)
        if not value or len(value) > 64:
            raise InvalidInput(f"a tag must be 1 to 64 characters: {name!r}", field="tags")
        cleaned.append(value)
    return list(dict.fromkeys(cleaned))


@transaction.atomic
def tag(*, conversation: Conversation, actor: Agent | None, names: Iterable[str]) -> list[str]:
    """Add tags (created on first use); returns the ones that were new on this conversation.

    Locks the conversation, so two callers adding the same tag at once record it once.
    """
    wanted = _clean_tags(names)
    _lock_row(conversation)
    existing = set(conversation.tags.filter(name__in=wanted).values_list("name", flat=True))
    added = [name for name in wanted if name not in existing]
    if not added:
        return []
    for name in added:
        tag_row, _ = Tag.objects.get_or_create(name=name)
        conversation.tags.add(tag_row)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    _event(conversation, EventKind.TAGGED, actor, tags=added)
    _updated(conversation, actor, tags=True)
    return added


@transaction.atomic
def untag(*, conversation: Conversation, actor: Agent | None, names: Iterable[str]) -> list[str]:
    wanted = _clean_tags(names)
    _lock_row(conversation)
    present = list(conversation.tags.filter(name__in=wanted))
    if not present:
        return []
    conversation.tags.remove(*present)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    removed = [t.name for t in present]
    _event(conversation, EventKind.UNTAGGED, actor, tags=removed)
    _updated(conversation, actor, tags=True)
    return removed


@transaction.atomic
def mark_read(*, conversation: Conversation, actor: Agent) -> None:
    if conversation.unread_count:
        Conversation.objects.filter(pk=conversation.pk).update(unread_count=0)
        conversation.unread_count = 0
        _updated(conversation, actor, read=True)


@transaction.atomic
def merge_conversations(
    *, source: Conversation, target: Conversation, actor: Agent | None
) -> ConversationMerge:
    """Fold ``source`` into ``target``: its messages move, it closes and points at ``target``.

    Both must belong to the same customer. Undo with :func:`unmerge_conversations`.
    """
    if source.pk == target.pk:
        raise InvalidInput("cannot merge a conversation into itself")
    source, target = _locked_pair(source, target)
    if source.customer_id != target.customer_id:
        raise InvalidInput("only conversations of the same customer can be merged")
    if source.merged_into_id is not None or target.merged_into_id is not None:
        raise Conflict("one of these conversations is already merged")
    if target.status == Status.CLOSED:
        # A closed conversation never reopens: messages merged into it would be out of reach.
        raise Conflict(f"#{target.pk} is closed; merge into an open conversation")
    message_ids = list(source.messages.values_list("pk", flat=True))
    Message.objects.filter(pk__in=message_ids).update(conversation=target)
    record = ConversationMerge.objects.create(
        source=source,
        target=target,
        message_ids=message_ids,
        source_status=source.status,
        source_unread_count=source.unread_count,
        merged_by=actor,
    )
    source.merged_into = target
    source.status = Status.CLOSED
    source.save(update_fields=["merged_into", "status", "updated_at"])
    _refresh_summary(source, unread=0)
    waiting = _refresh_summary(target, unread=target.unread_count + record.source_unread_count)
    if waiting is not None and target.status in (Status.PENDING, Status.ON_HOLD, Status.SOLVED):
        # Unanswered customer messages came along: the target needs an answer again, as when
        # the customer writes to it directly (the pipeline's rule).
        _set_status_locked(target, Status.OPEN, actor)
        target.waiting_since = waiting
        target.save(update_fields=["waiting_since"])
    _event(target, EventKind.MERGED, actor, source=source.pk, merge=record.pk)
    _event(source, EventKind.MERGED, actor, into=target.pk, merge=record.pk)
    emit("conversation.merged", source_id=source.pk, target_id=target.pk, merge_id=record.pk)
    _updated(target, actor, merged=True)
    _updated(source, actor, merged=True)
    return record


@transaction.atomic
def unmerge_conversations(*, merge: ConversationMerge, actor: Agent | None) -> Conversation:
    """Undo ``merge``: the moved messages go back and the source gets its old status back."""
    merge = ConversationMerge.objects.select_for_update().get(pk=merge.pk)
    if merge.undone_at is not None:
        raise Conflict("this merge was already undone")
    source, target = _locked_pair(merge.source, merge.target)
    if target.merged_into_id is not None:
        # The moved messages went on to another conversation: undo that later merge first.
        raise Conflict(
            f"#{target.pk} was merged into #{target.merged_into_id} since; undo that merge first"
        )
    Message.objects.filter(pk__in=merge.message_ids, conversation=target).update(
        conversation=source
    )
    source.merged_into = None
    source.status = merge.source_status
    source.save(update_fields=["merged_into", "status", "updated_at"])
    merge.undone_at = timezone.now()
    merge.save(update_fields=["undone_at"])
    _refresh_summary(source, unread=merge.source_unread_count)
    _refresh_summary(target, unread=max(0, target.unread_count - merge.source_unread_count))
    _event(target, EventKind.UNMERGED, actor, source=source.pk, merge=merge.pk)
    _event(source, EventKind.UNMERGED, actor, into=target.pk, merge=merge.pk)
    emit("conversation.unmerged", source_id=source.pk, target_id=target.pk, merge_id=merge.pk)
    _updated(target, actor, merged=True)
    _updated(source, actor, merged=True)
    return source


def _locked_pair(source: Conversation, target: Conversation) -> tuple[Conversation, Conversation]:
    """Both re-read under row locks taken in id order, so opposite merges cannot deadlock."""
    rows = Conversation.objects.select_for_update().filter(pk__in=[source.pk, target.pk])
    locked = {c.pk: c for c in rows.order_by("pk")}
    return locked[source.pk], locked[target.pk]


def _refresh_summary(conversation: Conversation, *, unread: int) -> datetime | None:
    """Recompute the denormalized inbox-list fields from the messages (after a move).

    ``unread`` is given by the caller: reading is not recorded per message, so it cannot be
    derived from them. Returns when the oldest unanswered customer message was sent (None: all
    answered), whatever the status.
    """
    visible = conversation.messages.exclude(direction=Direction.NOTE)
    last = visible.order_by("-sent_at", "-id").first()
    if last is not None:
        conversation.last_message_at = last.sent_at
        conversation.last_message_preview = " ".join(last.text.split())[:PREVIEW_CHARS]
    times = visible.aggregate(
        last_in=Max("sent_at", filter=Q(direction=Direction.INBOUND)),
        first_out=Min("sent_at", filter=Q(direction=Direction.OUTBOUND)),
        last_out=Max("sent_at", filter=Q(direction=Direction.OUTBOUND)),
    )
    conversation.last_inbound_at = times["last_in"]
    conversation.first_response_at = times["first_out"]
    conversation.message_count = conversation.messages.count()
    waiting = visible.filter(direction=Direction.INBOUND)
    if times["last_out"] is not None:
        waiting = waiting.filter(sent_at__gt=times["last_out"])
    first_waiting = waiting.order_by("sent_at").values_list("sent_at", flat=True).first()
    conversation.waiting_since = first_waiting if conversation.status in ACTIVE_STATUSES else None
    conversation.unread_count = unread
    conversation.save(
        update_fields=[
            "last_message_at",
            "last_message_preview",
            "last_inbound_at",
            "first_response_at",
            "message_count",
            "waiting_since",
            "unread_count",
            "updated_at",
        ]
    )
    return first_waiting


def add_inbox_member(*, inbox: Inbox, agent: Agent, actor: Agent | None) -> None:
    """Let ``agent`` work ``inbox``; recorded in the audit log."""
    from kefu.accounts.actions import audit

    _, created = InboxMembership.objects.get_or_create(inbox=inbox, agent=agent)
    if created:
        audit(actor=actor, action="inbox.member_added", obj=inbox, agent=agent.pk)


# --- Outbound delivery (called by kefu.conversations.tasks.deliver_message) --------------------

# A worker holds the message while it talks to the provider. Moving QUEUED -> SENDING in one
# conditional UPDATE is the claim: of two workers running the same delivery, one updates the
# row and sends, the other updates nothing and stops.
SENDING = DeliveryStatus.SENDING


def claim_delivery(*, message_id: int) -> Message | None:
    """Claim a queued outbound message for sending; None when there is nothing to send.

    None means: another worker claimed it, it was sent or failed already, or it is not an
    outbound message. The returned message has ``inbox`` and ``conversation`` loaded.
    """
    claimed = Message.objects.filter(
        pk=message_id, direction=Direction.OUTBOUND, delivery_status=DeliveryStatus.QUEUED
    ).update(delivery_status=SENDING)
    if not claimed:
        return None
    message = Message.objects.select_related("inbox", "conversation").get(pk=message_id)
    # When the claim was taken: a claim far older than any send means the worker died mid-send.
    delivery = {**message.metadata.get("delivery", {}), "claimed_at": timezone.now().isoformat()}
    message.metadata = {**message.metadata, "delivery": delivery}
    message.save(update_fields=["metadata"])
    return message


def _delivery_metadata(message: Message, attempt: int, **extra: object) -> dict:
    delivery = {**message.metadata.get("delivery", {}), "attempts": attempt, **extra}
    return {**message.metadata, "delivery": delivery}


@transaction.atomic
def mark_delivery_sent(
    *, message: Message, provider_id: str | None, status: str, attempt: int
) -> Message:
    """Record that the provider accepted a claimed message (``status``: sent or delivered).

    ``provider_id`` becomes the message's external_id (unique per inbox), so later status
    updates from the provider find it. Emits ``message.sent``.
    """
    if status not in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED):
        raise InvalidInput(f"a sent message cannot have delivery status {status!r}")
    now = timezone.now()
    message.delivery_status = status
    message.delivery_error = ""
    message.metadata = _delivery_metadata(message, attempt, sent_at=now.isoformat())
    fields = ["delivery_status", "delivery_error", "metadata"]
    if provider_id:
        message.external_id = provider_id
        fields.append("external_id")
    message.save(update_fields=fields)
    emit(
        "message.sent",
        message_id=message.pk,
        conversation_id=message.conversation_id,
        status=status,
    )
    _updated(message.conversation, None, delivery=True)
    return message


@transaction.atomic
def retry_delivery(*, message: Message, error: str, attempt: int, retry_at: datetime) -> Message:
    """Put a claimed message back in the queue after a transient failure (the task re-enqueues).

    The error stays visible on the message while it waits for ``retry_at``.
    """
    message.delivery_status = DeliveryStatus.QUEUED
    message.delivery_error = error[:2000]
    message.metadata = _delivery_metadata(message, attempt, next_attempt_at=retry_at.isoformat())
    message.save(update_fields=["delivery_status", "delivery_error", "metadata"])
    emit(
        "message.delivery_retry",
        message_id=message.pk,
        conversation_id=message.conversation_id,
        attempt=attempt,
    )
    return message


@transaction.atomic
def mark_delivery_failed(*, message: Message, error: str, attempt: int) -> Message:
    """Give up on a message: mark it failed, tell the agents in a note, reopen the conversation.

    Nothing is lost silently: the failure shows on the message, as a system note in the timeline,
    and the conversation goes back to the open queue (unless it is closed). Emits
    ``message.failed``.
    """
    from django.utils.translation import gettext

    message.delivery_status = DeliveryStatus.FAILED
    message.delivery_error = error[:2000]
    message.metadata = _delivery_metadata(message, attempt, failed_at=timezone.now().isoformat())
    message.save(update_fields=["delivery_status", "delivery_error", "metadata"])
    conversation = _locked(message.conversation)
    text = gettext("A reply could not be delivered: %(error)s") % {"error": message.delivery_error}
    note = Message.objects.create(
        conversation=conversation,
        inbox_id=conversation.inbox_id,
        direction=Direction.NOTE,
        author_kind=AuthorKind.SYSTEM,
        text=text,
        delivery_status=DeliveryStatus.SENT,
        sent_at=timezone.now(),
        metadata={"delivery_failed": message.pk},
    )
    Conversation.objects.filter(pk=conversation.pk).update(message_count=F("message_count") + 1)
    _event(conversation, EventKind.NOTE_ADDED, None, note, delivery_failed=message.pk)
    reopen = conversation.status in (Status.PENDING, Status.ON_HOLD, Status.SOLVED)
    if reopen and conversation.merged_into_id is None:
        _set_status_locked(conversation, Status.OPEN, None)
    emit(
        "message.failed",
        message_id=message.pk,
        conversation_id=conversation.pk,
        error=message.delivery_error,
    )
    _updated(conversation, None, delivery=True)
    return message


# How far a message got; a provider's status report never moves a message backwards.
_DELIVERY_RANK: dict[str, int] = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.SENDING: 1,
    DeliveryStatus.SENT: 2,
    DeliveryStatus.DELIVERED: 3,
    DeliveryStatus.READ: 4,
}


@transaction.atomic
def record_provider_status(
    *, inbox_id: int, provider_id: str, status: str, at: datetime, error: str = ""
) -> Message | None:
    """Apply a provider's report (sent, delivered, read, failed) to the outbound message it
    names; None when kefu sent no such message. Reports arrive late and out of order: one that
    would move the message backwards (delivered after read) changes nothing, and a failure after
    delivery is ignored. A failure before it goes through ``mark_delivery_failed`` (a note, the
    conversation reopened)."""
    message = (
        Message.objects.select_for_update()
        .filter(inbox_id=inbox_id, external_id=provider_id, direction=Direction.OUTBOUND)
        .first()
    )
    if message is None:
        return None
    current = _DELIVERY_RANK.get(message.delivery_status, -1)
    if status == DeliveryStatus.FAILED:
        if message.delivery_status == DeliveryStatus.FAILED or current >= 3:
            return message
        attempt = int(message.metadata.get("delivery", {}).get("attempts", 1) or 1)
        return mark_delivery_failed(message=message, error=error or "failed", attempt=attempt)
    if status not in _DELIVERY_RANK or _DELIVERY_RANK[status] <= current:
        return message
    message.delivery_status = status
    message.metadata = {**message.metadata, f"{status}_at": at.isoformat()}
    message.save(update_fields=["delivery_status", "metadata"])
    emit(
        "message.status",
        message_id=message.pk,
        conversation_id=message.conversation_id,
        status=status,
    )
    return message


def fail_interrupted_deliveries(*, claimed_before: datetime) -> list[int]:
    """Fail the messages a worker claimed before ``claimed_before`` and never finished.

    A worker killed while talking to the provider leaves its message in SENDING. Whether the
    provider got it is unknown, so it is not sent again (the customer could get it twice): it
    fails visibly, like any other failure, and an agent decides. Returns the failed ids.
    """
    from django.utils.translation import gettext

    failed = []
    for candidate in Message.objects.filter(delivery_status=SENDING).only("pk", "metadata"):
        claimed_at = candidate.metadata.get("delivery", {}).get("claimed_at")
        if claimed_at and datetime.fromisoformat(claimed_at) >= claimed_before:
            continue
        with transaction.atomic():
            message = (
                Message.objects.select_for_update()
                .filter(pk=candidate.pk, delivery_status=SENDING)
                .select_related("conversation")
                .first()
            )
            if message is None:
                continue  # its worker finished after all
            error = gettext(
                "sending was interrupted (the worker stopped); the customer may not have it"
            )
            attempt = int(message.metadata.get("delivery", {}).get("attempts", 1))
            mark_delivery_failed(message=message, error=error, attempt=attempt)
            failed.append(message.pk)
    return failed


MAX_KEPT_EDITS = 20


@transaction.atomic
def edit_inbound_message(
    *, message: Message, text: str, html: str = "", at: datetime | None = None
) -> Message:
    """Apply a customer's edit of a message they sent (Telegram lets them, for one): the text
    changes, every earlier version stays in ``metadata["edits"]`` (the newest MAX_KEPT_EDITS),
    the timeline marks it edited, and search indexes the new words (``message.edited``).

    An edit older than the version stored (a late, out-of-order delivery) changes nothing.
    """
    message = Message.objects.select_for_update().get(pk=message.pk)
    if message.direction != Direction.INBOUND:
        raise InvalidInput("only a customer's own message can be edited this way")
    body, clean_html = _body(text, html)
    when = at or timezone.now()
    last = message.metadata.get("edited_at")
    if last and datetime.fromisoformat(last) >= when:
        return message
    if body == message.text and clean_html == message.html:
        return message
    earlier = {"text": message.text, "html": message.html, "until": when.isoformat()}
    edits = [*message.metadata.get("edits", []), earlier][-MAX_KEPT_EDITS:]
    message.metadata = {**message.metadata, "edits": edits, "edited_at": when.isoformat()}
    message.text, message.html = body, clean_html
    message.save(update_fields=["text", "html", "metadata"])
    conversation = Conversation.objects.get(pk=message.conversation_id)
    newest = Message.objects.filter(conversation=conversation).order_by("-sent_at", "-id").first()
    if newest is not None and newest.pk == message.pk:
        conversation.last_message_preview = " ".join(body.split())[:PREVIEW_CHARS]
        conversation.save(update_fields=["last_message_preview", "updated_at"])
    emit(
        "message.edited",
        message_id=message.pk,
        conversation_id=conversation.pk,
        inbox_id=conversation.inbox_id,
    )
    _updated(conversation, None, message=True)
    return message


@transaction.atomic
def retry_failed_delivery(*, message: Message, actor: Agent) -> Message:
    """An agent sends a failed reply again. Only a failed message moves back to the queue, in
    one conditional update: a double click, two agents, or an API retry racing a click queue it
    once, and the worker's claim (queued -> sending) sends it once. Raises Conflict otherwise."""
    moved = Message.objects.filter(
        pk=message.pk, direction=Direction.OUTBOUND, delivery_status=DeliveryStatus.FAILED
    ).update(delivery_status=DeliveryStatus.QUEUED, delivery_error="")
    if not moved:
        raise Conflict("only a reply whose delivery failed can be sent again")
    message.refresh_from_db()
    delivery = {**message.metadata.get("delivery", {}), "attempts": 0, "retried_by": actor.pk}
    message.metadata = {**message.metadata, "delivery": delivery}
    message.save(update_fields=["metadata"])
    conversation = Conversation.objects.get(pk=message.conversation_id)
    _event(conversation, EventKind.REPLIED, actor, message, retried=True)
    emit("message.queued", message_id=message.pk, conversation_id=conversation.pk)
    _updated(conversation, actor, delivery=True)
    return message
