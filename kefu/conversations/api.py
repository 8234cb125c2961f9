"""REST API v1: inbound messages, conversations, inboxes."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from ninja import Query, Router, Schema, Status
from pydantic import Field

from kefu.accounts.models import Agent, Team
from kefu.conversations import actions, ingest
from kefu.conversations.models import (
    Conversation,
    Inbox,
    InboxKind,
    Message,
    Priority,
)
from kefu.conversations.models import Status as ConversationStatus
from kefu.conversations.schemas import (
    AcceptedOut,
    BatchIn,
    BatchOut,
    ConversationDetailOut,
    ConversationPage,
    ConversationPatch,
    InboundIn,
    InboxOut,
    MessageOut,
    ReplyIn,
)
from kefu.conversations.selectors import (
    conversations_visible_to,
    get_conversation,
    get_inbox_for_ingest,
    inboxes_visible_to,
)
from kefu.core.errors import InvalidInput, NotFound

router = Router(tags=["conversations"])

MAX_PAGE = 200
DETAIL_MESSAGES = 500
# Ids are 64-bit: a larger number in a filter is a 422, not a database overflow (a 500).
MAX_ID = 2**63 - 1


def _user(request: HttpRequest) -> Agent:
    return request.auth  # type: ignore[attr-defined, return-value]


def _api_inbox(user: Agent, inbox_id: int) -> Inbox:
    inbox = get_inbox_for_ingest(user, inbox_id)
    if inbox.kind != InboxKind.API:
        raise InvalidInput(
            f"inbox {inbox_id} is a {inbox.kind} inbox; only API inboxes take messages here",
            field="inbox_id",
        )
    if not inbox.is_active:
        raise InvalidInput(f"inbox {inbox_id} is disabled", field="inbox_id")
    return inbox


@router.post("/messages", response={202: AcceptedOut})
def submit_message(request: HttpRequest, payload: InboundIn):  # type: ignore[no-untyped-def]
    """Submit one inbound customer message. A repeated external_id returns the same ids."""
    inbox = _api_inbox(_user(request), payload.inbox_id)
    result = actions.receive_message(inbox=inbox, message=ingest.to_inbound(payload))
    return Status(
        202,
        {
            "conversation_id": result.conversation.pk,
            "message_id": result.message.pk,
            "created": result.created,
        },
    )


@router.post("/messages/batch", response={202: BatchOut})
def submit_batch(request: HttpRequest, payload: BatchIn):  # type: ignore[no-untyped-def]
    """Up to 500 inbound messages; each is idempotent and gets its own result."""
    user = _user(request)
    inboxes: dict[int, Inbox | str] = {}
    for item in payload.messages:
        if item.inbox_id not in inboxes:
            try:
                inboxes[item.inbox_id] = _api_inbox(user, item.inbox_id)
            except (NotFound, InvalidInput) as exc:
                inboxes[item.inbox_id] = exc.message
    return Status(202, {"results": ingest.receive_batch(payload.messages, inboxes)})


@router.get("/inboxes", response=list[InboxOut])
def list_inboxes(request: HttpRequest):  # type: ignore[no-untyped-def]
    rows = inboxes_visible_to(_user(request)).select_related("store").order_by("pk")
    return [
        {
            "id": i.pk,
            "name": i.name,
            "kind": i.kind,
            "store_id": i.store_id,
            "store": i.store.name if i.store else None,
        }
        for i in rows
    ]


class ConversationFilters(Schema):
    status: str | None = None
    inbox: int | None = Field(None, ge=1, le=MAX_ID)
    assignee: str | None = None
    team: int | None = Field(None, ge=1, le=MAX_ID)
    priority: str | None = None
    tag: str | None = None
    updated_since: datetime | None = None
    cursor: str | None = None
    limit: int = 50


def _encode_cursor(conversation: Conversation) -> str:
    raw = json.dumps([conversation.updated_at.isoformat(), conversation.pk])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        stamp, pk = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return _aware(datetime.fromisoformat(stamp)), int(pk)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise InvalidInput("cursor is not valid; use next_cursor from a previous page") from None


def _aware(moment: datetime) -> datetime:
    """A time without a zone is UTC, as the API documents (not the server's zone)."""
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)


def _choices(raw: str, allowed: list[str], field: str) -> list[str]:
    """A comma-separated filter value; an unknown choice is a 422 rather than an empty page."""
    values = [v.strip() for v in raw.split(",") if v.strip()]
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise InvalidInput(
            f"{field} must be among {', '.join(allowed)} (comma-separated)", field=field
        )
    return values


def _filtered(user: Agent, f: ConversationFilters):  # type: ignore[no-untyped-def]
    rows = conversations_visible_to(user)
    if f.status:
        rows = rows.filter(status__in=_choices(f.status, ConversationStatus.values, "status"))
    if f.inbox is not None:
        rows = rows.filter(inbox_id=f.inbox)
    if f.assignee == "me":
        rows = rows.filter(assignee=user)
    elif f.assignee == "none":
        rows = rows.filter(assignee__isnull=True)
    elif f.assignee:
        # isdecimal, not isdigit: "²" is a digit that int() refuses (a 500).
        if not f.assignee.isdecimal() or int(f.assignee) > MAX_ID:
            raise InvalidInput("assignee must be an id, 'me' or 'none'", field="assignee")
        rows = rows.filter(assignee_id=int(f.assignee))
    if f.team is not None:
        rows = rows.filter(team_id=f.team)
    if f.priority:
        rows = rows.filter(priority__in=_choices(f.priority, Priority.values, "priority"))
    if f.tag:
        rows = rows.filter(tags__name=actions.normalize_tag(f.tag))
    if f.updated_since:
        rows = rows.filter(updated_at__gte=_aware(f.updated_since))
    return rows


@router.get("/conversations", response=ConversationPage)
def list_conversations(request: HttpRequest, filters: Query[ConversationFilters]):  # type: ignore[no-untyped-def]
    """Newest activity first; page on with ``cursor`` (keyset pagination, no OFFSET)."""
    if not 1 <= filters.limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    rows = _filtered(_user(request), filters)
    if filters.cursor:
        stamp, pk = _decode_cursor(filters.cursor)
        rows = rows.filter(updated_at__lt=stamp) | rows.filter(updated_at=stamp, pk__lt=pk)
    page = list(rows.order_by("-updated_at", "-id").prefetch_related("tags")[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    return {
        "items": [conversation_out(c) for c in page],
        "next_cursor": _encode_cursor(page[-1]) if more else None,
    }


def conversation_out(c: Conversation) -> dict:
    return {
        **{f: getattr(c, f) for f in _CONVERSATION_FIELDS},
        "number": c.number,
        "tags": sorted(t.name for t in c.tags.all()),
    }


_CONVERSATION_FIELDS = [
    "id",
    "inbox_id",
    "store_id",
    "customer_id",
    "subject",
    "status",
    "priority",
    "intent",
    "language",
    "assignee_id",
    "team_id",
    "last_message_at",
    "last_message_preview",
    "waiting_since",
    "unread_count",
    "message_count",
    "merged_into_id",
    "created_at",
    "updated_at",
]


def message_out(m: Message) -> dict:
    return {
        **{f: getattr(m, f) for f in _MESSAGE_FIELDS},
        "attachments": [
            {
                "id": a.pk,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "refused_reason": a.refused_reason,
            }
            for a in m.attachments.all()
        ],
    }


_MESSAGE_FIELDS = [
    "id",
    "direction",
    "author_kind",
    "author_agent_id",
    "subject",
    "text",
    "html",
    "language",
    "external_id",
    "delivery_status",
    "sent_at",
]


@router.get("/conversations/{conversation_id}", response=ConversationDetailOut)
def conversation_detail(request: HttpRequest, conversation_id: int):  # type: ignore[no-untyped-def]
    conversation = get_conversation(_user(request), conversation_id)
    messages = (conversation.messages.order_by("-sent_at", "-id").prefetch_related("attachments"))[
        :DETAIL_MESSAGES
    ]
    return {
        **conversation_out(conversation),
        "messages": [message_out(m) for m in reversed(list(messages))],
    }


@router.patch("/conversations/{conversation_id}", response=ConversationDetailOut)
def update_conversation(request: HttpRequest, conversation_id: int, payload: ConversationPatch):  # type: ignore[no-untyped-def]
    """Change several fields at once: all of them, or (on any refusal) none."""
    user = _user(request)
    conversation = get_conversation(user, conversation_id)
    sent = payload.model_fields_set
    with transaction.atomic():
        if "status" in sent and payload.status is not None:
            actions.set_status(conversation=conversation, actor=user, status=payload.status)
        if "priority" in sent and payload.priority is not None:
            actions.set_priority(conversation=conversation, actor=user, priority=payload.priority)
        if "assignee_id" in sent or "team_id" in sent:
            _apply_assignment(user, conversation, payload, sent)
        if "tags" in sent and payload.tags is not None:
            _replace_tags(user, conversation, payload.tags)
    return conversation_detail(request, conversation_id)


def _apply_assignment(
    user: Agent, conversation: Conversation, payload: ConversationPatch, sent: set[str]
) -> None:
    assignee = conversation.assignee
    if "assignee_id" in sent:
        assignee = None
        if payload.assignee_id is not None:
            assignee = Agent.objects.filter(pk=payload.assignee_id, is_active=True).first()
            if assignee is None:
                raise InvalidInput(f"no agent {payload.assignee_id}", field="assignee_id")
    team = None
    if payload.team_id is not None:
        team = Team.objects.filter(pk=payload.team_id).first()
        if team is None:
            raise InvalidInput(f"no team {payload.team_id}", field="team_id")
    # "team_id": null clears the team; leaving it out keeps it.
    clear_team = "team_id" in sent and payload.team_id is None
    actions.assign(
        conversation=conversation,
        actor=user,
        assignee=assignee,
        team=team,
        clear_team=clear_team,
    )


def _replace_tags(user: Agent, conversation: Conversation, tags: list[str]) -> None:
    current = set(conversation.tags.values_list("name", flat=True))
    wanted = {actions.normalize_tag(t) for t in tags}
    if wanted - current:
        actions.tag(conversation=conversation, actor=user, names=sorted(wanted - current))
    if current - wanted:
        actions.untag(conversation=conversation, actor=user, names=sorted(current - wanted))


@router.post("/conversations/{conversation_id}/messages/{message_id}/retry", response=MessageOut)
def retry_message(request: HttpRequest, conversation_id: int, message_id: int):  # type: ignore[no-untyped-def]
    """Send a reply whose delivery failed again (409 for any other message; queued once
    however many retries race)."""
    user = _user(request)
    conversation = get_conversation(user, conversation_id)
    message = Message.objects.filter(pk=message_id, conversation=conversation).first()
    if message is None:
        raise NotFound(f"message {message_id} not found")
    return message_out(actions.retry_failed_delivery(message=message, actor=user))


@router.post("/conversations/{conversation_id}/messages", response={201: MessageOut})
def post_message(request: HttpRequest, conversation_id: int, payload: ReplyIn):  # type: ignore[no-untyped-def]
    """Reply to the customer (queued for delivery) or add an internal note."""
    user = _user(request)
    conversation = get_conversation(user, conversation_id)
    if payload.kind == "note":
        if payload.status is not None:
            raise InvalidInput("a note cannot change the status", field="status")
        message = actions.add_note(conversation=conversation, actor=user, text=payload.text)
    else:
        message = actions.reply(
            conversation=conversation,
            actor=user,
            text=payload.text,
            html=payload.html,
            status=payload.status,
        )
    return Status(201, message_out(message))
