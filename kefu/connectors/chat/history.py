"""What a widget visitor may read: the messages of their own conversations, and nothing else.

A visitor's conversations are the chat inbox's conversations with the visitor's thread key;
notes, events and other customers never leave the server. Messages go to the widget as small
dicts (the widget renders text only; an agent's HTML is never sent to a storefront page).
"""

from __future__ import annotations

from django.db.models import Prefetch
from django.urls import reverse

from kefu.connectors.chat.visitors import thread_key
from kefu.conversations.models import Attachment, Conversation, Direction, Message

PAGE = 200


def conversation_ids(inbox_id: int, visitor: str) -> list[int]:
    return list(
        Conversation.objects.filter(
            inbox_id=inbox_id, thread_key=thread_key(visitor), merged_into__isnull=True
        ).values_list("pk", flat=True)
    )


def messages_after(
    inbox_id: int, widget_key: str, conversations: list[int], after_id: int
) -> list[dict]:
    """The visitor-visible messages of ``conversations`` with an id above ``after_id``, oldest
    first (at most PAGE: the newest PAGE on a first load, the next PAGE on a sync)."""
    if not conversations:
        return []
    found = Message.objects.filter(
        inbox_id=inbox_id,
        conversation_id__in=conversations,
        direction__in=[Direction.INBOUND, Direction.OUTBOUND],
        pk__gt=after_id,
    ).select_related("author_agent")
    found = found.prefetch_related(
        Prefetch("attachments", queryset=Attachment.objects.order_by("pk"))
    )
    if after_id:
        rows = list(found.order_by("pk")[:PAGE])
    else:
        rows = list(reversed(found.order_by("-pk")[:PAGE]))
    return [_visible(message, widget_key) for message in rows]


def _visible(message: Message, widget_key: str) -> dict:
    from_visitor = message.direction == Direction.INBOUND
    agent = message.author_agent
    return {
        "id": message.pk,
        "conversation": message.conversation_id,
        "from": "visitor" if from_visitor else "agent",
        "author": "" if from_visitor or agent is None else agent.name.split(" ")[0],
        "text": message.text,
        "at": message.sent_at.isoformat(),
        "status": message.delivery_status,
        "client_id": (message.metadata.get("chat") or {}).get("client_id", ""),
        "attachments": [
            {
                "name": attachment.filename,
                "size": attachment.size,
                "refused": attachment.refused_reason,
                "url": ""
                if attachment.refused_reason or not attachment.file
                else reverse("chat:attachment", args=[widget_key, attachment.pk]),
            }
            for attachment in message.attachments.all()
        ],
    }


def seen_by_agents(conversations: list[int]) -> bool:
    """Whether an agent has read everything the visitor wrote (the "Seen" mark)."""
    return not Conversation.objects.filter(pk__in=conversations, unread_count__gt=0).exists()


def visitor_may_read(inbox_id: int, visitor: str, attachment_id: int) -> Attachment | None:
    return (
        Attachment.objects.filter(
            pk=attachment_id,
            message__inbox_id=inbox_id,
            message__conversation__thread_key=thread_key(visitor),
            message__direction__in=[Direction.INBOUND, Direction.OUTBOUND],
        )
        .exclude(file="")
        .first()
    )
