"""Domain events become small pushes to the browsers of the agents who may see them.

A push names what changed, never its content ({"type": "conversation.updated", "id": 42}); the
page fetches the fragment over HTTP, where the permission checks live. Pushes go to one group per
inbox, so only sockets of agents who can see that inbox get them (a socket joins the groups of
its agent's inboxes when it connects, and again when the agent's access changes).
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from kefu.conversations.models import Conversation
from kefu.core.events import DomainEvent, subscribe

logger = logging.getLogger(__name__)

# Events about a conversation, and the push they become.
CONVERSATION_EVENTS = {
    "conversation.created": "conversation.created",
    "message.received": "conversation.updated",
    "message.queued": "conversation.updated",
    "message.sent": "conversation.updated",
    "message.failed": "conversation.updated",
    "note.added": "conversation.updated",
    "conversation.updated": "conversation.updated",
    "conversation.assigned": "conversation.updated",
    "conversation.status_changed": "conversation.updated",
    "sla.warning": "conversation.updated",
    "sla.breached": "conversation.updated",
}


def inbox_group(inbox_id: int) -> str:
    return f"ws.inbox.{inbox_id}"


def agent_group(agent_id: int) -> str:
    return f"ws.agent.{agent_id}"


def _send(group: str, message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:
        # A push is a hint; the page still shows the truth on its next fetch.
        logger.exception("realtime push to %s failed", group)


def push_conversation(kind: str, conversation_id: int, inbox_id: int | None) -> None:
    if inbox_id is None:
        inbox_id = (
            Conversation.objects.filter(pk=conversation_id)
            .values_list("inbox_id", flat=True)
            .first()
        )
        if inbox_id is None:
            return
    _send(inbox_group(inbox_id), {"type": "push", "event": {"type": kind, "id": conversation_id}})


def _on_conversation_event(event: DomainEvent) -> None:
    conversation_id = event.payload.get("conversation_id")
    if conversation_id is None:
        return
    push_conversation(
        CONVERSATION_EVENTS[event.name], conversation_id, event.payload.get("inbox_id")
    )


def _on_merge(event: DomainEvent) -> None:
    for key in ("source_id", "target_id"):
        conversation_id = event.payload.get(key)
        if conversation_id is not None:
            push_conversation("conversation.updated", conversation_id, None)


def _on_access_changed(event: DomainEvent) -> None:
    agent_id = event.payload.get("agent_id")
    if agent_id is not None:
        _send(agent_group(agent_id), {"type": "access.changed"})


for _name in CONVERSATION_EVENTS:
    subscribe(_name)(_on_conversation_event)
subscribe("conversation.merged")(_on_merge)
subscribe("conversation.unmerged")(_on_merge)
subscribe("agent.access_changed")(_on_access_changed)
