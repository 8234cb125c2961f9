"""Domain events become small pushes to the browsers of the agents who may see them.

A push names what changed, never its content ({"type": "conversation.updated", "id": 42}); the
page fetches the fragment over HTTP, where the permission checks live. Pushes go to one group per
inbox, so only sockets of agents who can see that inbox get them (a socket joins the groups of
its agent's inboxes when it connects, and again when the agent's access changes).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict

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


# Pushes leave the writing thread at once: they are collected here and sent by one thread per
# process every FLUSH_DELAY, duplicates dropped. Sending each from the request cost about 1 ms
# per message on the ingest path (an event loop round per push). A group's conversation events
# of one flush travel as one channel-layer message (the consumer sends them on one by one):
# a 500-message batch into one inbox is one group send, not 500 (those were a twentieth of the
# batch path's CPU, and as many Redis round trips at scale).
FLUSH_DELAY = 0.05
# Keeps a channel-layer message small (~10 kB) whatever the burst.
EVENTS_PER_MESSAGE = 250


class _Pusher:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[str, set[tuple[tuple[str, object], ...]]] = defaultdict(set)
        # group -> conversation events ((type, id) -> None: ordered, each once)
        self.events: dict[str, dict[tuple[str, int], None]] = defaultdict(dict)
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        # The event loop the workspace consumers of this process run in (set when a socket
        # connects). The in-memory channel layer must be used from that loop; sending there
        # also suits the Redis layer. Without sockets in this process, a private loop is used.
        self.consumer_loop: asyncio.AbstractEventLoop | None = None
        # A push someone is waiting for (a reply to a chat visitor) skips the coalescing delay.
        self.urgent = False

    def add(self, group: str, message: dict, *, urgent: bool = False) -> None:
        with self.lock:
            self.pending[group].add(tuple(sorted(message.items(), key=lambda i: i[0])))
            self.urgent = self.urgent or urgent
            self._ensure_thread()
        self.wake.set()

    def add_event(self, group: str, kind: str, conversation_id: int) -> None:
        with self.lock:
            self.events[group][(kind, conversation_id)] = None
            self._ensure_thread()
        self.wake.set()

    def _ensure_thread(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, name="kefu-push", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        private = asyncio.new_event_loop()
        while True:
            self.wake.wait()
            if not self.urgent:
                time.sleep(FLUSH_DELAY)
            self.wake.clear()
            with self.lock:
                batch, self.pending = self.pending, defaultdict(set)
                events, self.events = self.events, defaultdict(dict)
                self.urgent = False
            try:
                self._send(batch, events, private)
            except Exception:
                # A push is a hint; the page still shows the truth on its next fetch.
                logger.exception("realtime pushes to %d groups failed", len(batch) + len(events))

    def _send(self, batch: dict, events: dict, private: asyncio.AbstractEventLoop) -> None:
        layer = get_channel_layer()
        if layer is None or not (batch or events):
            return
        sends = [
            (group, _unfreeze(message)) for group, messages in batch.items() for message in messages
        ]
        for group, pairs in events.items():
            listed = [{"type": kind, "id": pk} for kind, pk in pairs]
            for start in range(0, len(listed), EVENTS_PER_MESSAGE):
                chunk = listed[start : start + EVENTS_PER_MESSAGE]
                sends.append((group, {"type": "push", "events": chunk}))

        async def send_all() -> None:
            await asyncio.gather(*(layer.group_send(group, message) for group, message in sends))

        loop = self.consumer_loop
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(send_all(), loop).result(timeout=10)
        else:
            private.run_until_complete(send_all())


def _unfreeze(message: tuple) -> dict:
    return {key: dict(value) if isinstance(value, tuple) else value for key, value in message}


_pusher = _Pusher()


def remember_consumer_loop(loop: asyncio.AbstractEventLoop) -> None:
    _pusher.consumer_loop = loop


def send_to_group(group: str, message: dict, *, urgent: bool = False) -> None:
    """Queue a push to a channel-layer group (sent within FLUSH_DELAY, duplicates dropped;
    ``urgent`` sends at once, with whatever else is pending)."""
    frozen = {
        key: tuple(sorted(value.items())) if isinstance(value, dict) else value
        for key, value in message.items()
    }
    _pusher.add(group, frozen, urgent=urgent)


def push_conversation(kind: str, conversation_id: int, inbox_id: int | None) -> None:
    if inbox_id is None:
        inbox_id = (
            Conversation.objects.filter(pk=conversation_id)
            .values_list("inbox_id", flat=True)
            .first()
        )
        if inbox_id is None:
            return
    _pusher.add_event(inbox_group(inbox_id), kind, conversation_id)


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
        send_to_group(agent_group(agent_id), {"type": "access.changed"})


for _name in CONVERSATION_EVENTS:
    subscribe(_name)(_on_conversation_event)
subscribe("conversation.merged")(_on_merge)
subscribe("conversation.unmerged")(_on_merge)
subscribe("agent.access_changed")(_on_access_changed)
