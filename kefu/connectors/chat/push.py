"""Changes to chat conversations become hints to the visitor's sockets (``chat.sync``).

``conversation.updated`` follows every reply, read mark and status change; for a chat inbox's
conversation, the visitor's sockets are told to read what is new. Which inboxes are chat inboxes
is remembered for a few seconds (forgotten at once in the process that changes an inbox), so
the hook costs nothing on other channels' traffic.
"""

from __future__ import annotations

import threading
import time

from django.db.models.signals import post_delete, post_save, pre_save

from kefu.conversations.models import Inbox, InboxKind
from kefu.core.events import DomainEvent, subscribe
from kefu.workspace.realtime import send_to_group

CHAT_INBOXES_SECONDS = 10.0
_memo: tuple[float, frozenset[int]] = (0.0, frozenset())
_memo_lock = threading.Lock()


def chat_inbox_ids() -> frozenset[int]:
    global _memo
    expires, ids = _memo
    if expires > time.monotonic():
        return ids
    ids = frozenset(Inbox.objects.filter(kind=InboxKind.CHAT).values_list("pk", flat=True))
    with _memo_lock:
        _memo = (time.monotonic() + CHAT_INBOXES_SECONDS, ids)
    return ids


def forget_chat_inboxes(**kwargs: object) -> None:
    global _memo
    with _memo_lock:
        _memo = (0.0, frozenset())


def ensure_widget_key(sender: type, instance: Inbox, **kwargs: object) -> None:
    """Every chat inbox has its widget key from the start, however it was made (back office,
    API, demo data), so its snippet works at once."""
    from kefu.connectors.chat.config import new_widget_key

    if instance.kind == InboxKind.CHAT and not (instance.config or {}).get("widget_key"):
        instance.config = {**(instance.config or {}), "widget_key": new_widget_key()}


pre_save.connect(ensure_widget_key, sender=Inbox, dispatch_uid="chat-widget-key")
for _signal in (post_save, post_delete):
    _signal.connect(forget_chat_inboxes, sender=Inbox, dispatch_uid=f"chat-inboxes-{_signal}")


# What a visitor sees change: a message (a reply, an edit), its delivery, the agents' read mark.
# Assignments, tags, SLA clocks and the like stay inside the team, and cost the sockets nothing
# (an SLA tick may touch hundreds of chat conversations at once).
VISITOR_VISIBLE = frozenset({"message", "delivery", "read"})


@subscribe("conversation.updated")
def hint_visitor(event: DomainEvent) -> None:
    from kefu.connectors.chat.consumers import chat_group

    conversation_id = event.payload.get("conversation_id")
    inbox_id = event.payload.get("inbox_id")
    if conversation_id is None or inbox_id not in chat_inbox_ids():
        return
    if not VISITOR_VISIBLE.intersection(event.payload.get("changes") or ()):
        return
    send_to_group(
        chat_group(conversation_id), {"type": "chat.sync", "id": conversation_id}, urgent=True
    )
