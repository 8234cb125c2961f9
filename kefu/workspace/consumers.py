"""The agent's websocket: joins the groups of the inboxes the agent may see, forwards pushes."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from kefu.accounts.models import Agent
from kefu.conversations.selectors import visible_inbox_ids
from kefu.workspace.realtime import agent_group, inbox_group, remember_consumer_loop


@database_sync_to_async
def _inbox_groups(agent_id: int) -> list[str]:
    agent = Agent.objects.filter(pk=agent_id, is_active=True).first()
    if agent is None:
        return []
    return [inbox_group(i) for i in visible_inbox_ids(agent)]


class WorkspaceConsumer(AsyncJsonWebsocketConsumer):
    """Server to browser only: anything the browser sends is ignored."""

    groups_joined: list[str]

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
        wanted = [agent_group(self.agent_id), *await _inbox_groups(self.agent_id)]
        for group in set(self.groups_joined) - set(wanted):
            await self.channel_layer.group_discard(group, self.channel_name)
        for group in set(wanted) - set(self.groups_joined):
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = wanted

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: object, **kwargs: object) -> None:
        return None

    async def push(self, message: dict) -> None:
        await self.send_json(message["event"])

    async def access_changed(self, message: dict) -> None:
        await self._join()
        await self.send_json({"type": "access.changed"})
