"""The agent's websocket: joins the groups of the inboxes the agent may see, forwards pushes,
and carries presence on a conversation ("Ada is viewing", "Ada is typing") between the agents
who have it open: the collision warning."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.cache import cache

from kefu.accounts.models import Agent
from kefu.conversations.selectors import conversations_visible_to, visible_inbox_ids
from kefu.workspace.realtime import agent_group, inbox_group, remember_consumer_loop


@database_sync_to_async
def _inbox_ids(agent_id: int) -> list[int]:
    agent = Agent.objects.filter(pk=agent_id, is_active=True).first()
    if agent is None:
        return []
    return list(visible_inbox_ids(agent))


# An inbox counts as staffed (the chat widget says "we usually answer within minutes" rather
# than "leave a message") while an agent who sees it has the workspace open; the page pings
# every 30 s.
STAFFED_SECONDS = 90


async def _mark_staffed(inbox_ids: list[int]) -> None:
    if inbox_ids:
        await cache.aset_many({f"chat.staffed.{i}": 1 for i in inbox_ids}, timeout=STAFFED_SECONDS)


@database_sync_to_async
def _may_see(agent_id: int, conversation_id: int) -> str | None:
    """The agent's display name when they may see the conversation; None otherwise."""
    agent = Agent.objects.filter(pk=agent_id, is_active=True).first()
    if agent is None or not conversations_visible_to(agent).filter(pk=conversation_id).exists():
        return None
    return agent.name


def conversation_group(conversation_id: int) -> str:
    return f"ws.conversation.{conversation_id}"


PRESENCE_STATES = ("viewing", "typing", "left")


class WorkspaceConsumer(AsyncJsonWebsocketConsumer):
    """Pushes go server to browser. The browser may only say which conversation it shows and
    whether the agent is typing there ({"type": "presence", "id": 42, "state": "typing"}); a
    conversation the agent may not see is ignored, like anything else it sends."""

    groups_joined: list[str]
    inbox_ids: list[int]
    watching: int | None = None
    display_name: str = ""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.agent_id = user.pk
        self.groups_joined = []
        remember_consumer_loop(asyncio.get_running_loop())
        await self.accept()
        await self._join()

    async def _join(self) -> None:
        self.inbox_ids = await _inbox_ids(self.agent_id)
        await _mark_staffed(self.inbox_ids)
        wanted = [agent_group(self.agent_id), *(inbox_group(i) for i in self.inbox_ids)]
        for group in set(self.groups_joined) - set(wanted):
            await self.channel_layer.group_discard(group, self.channel_name)
        for group in set(wanted) - set(self.groups_joined):
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = wanted

    async def disconnect(self, code: int) -> None:
        if self.watching is not None:
            await self._announce("left")
            await self.channel_layer.group_discard(
                conversation_group(self.watching), self.channel_name
            )
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: object, **kwargs: object) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await _mark_staffed(getattr(self, "inbox_ids", []))
            return
        if not isinstance(content, dict) or content.get("type") != "presence":
            return
        conversation_id, state = content.get("id"), content.get("state")
        if not isinstance(conversation_id, int) or state not in PRESENCE_STATES:
            return
        if conversation_id != self.watching and not await self._watch(conversation_id):
            return
        await self._announce(str(state))

    async def _watch(self, conversation_id: int) -> bool:
        name = await _may_see(self.agent_id, conversation_id)
        if name is None:
            return False
        if self.watching is not None:
            await self._announce("left")
            await self.channel_layer.group_discard(
                conversation_group(self.watching), self.channel_name
            )
        self.watching, self.display_name = conversation_id, name
        await self.channel_layer.group_add(conversation_group(conversation_id), self.channel_name)
        return True

    async def _announce(self, state: str) -> None:
        assert self.watching is not None
        await self.channel_layer.group_send(
            conversation_group(self.watching),
            {
                "type": "presence",
                "id": self.watching,
                "agent_id": self.agent_id,
                "agent": self.display_name,
                "state": state,
            },
        )

    async def presence(self, message: dict) -> None:
        if message["agent_id"] == self.agent_id:
            return  # one's own presence is no collision
        await self.send_json(
            {
                "type": "presence",
                "id": message["id"],
                "agent_id": message["agent_id"],
                "agent": message["agent"],
                "state": message["state"],
            }
        )

    async def push(self, message: dict) -> None:
        # Several events per group message; "event" is one, as a process of the previous
        # release sends it (Redis layer, rolling deploy).
        for event in message.get("events") or [message["event"]]:
            await self.send_json(event)

    async def access_changed(self, message: dict) -> None:
        await self._join()
        await self.send_json({"type": "access.changed"})
