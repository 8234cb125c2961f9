"""The widget's websocket: ``/ws/chat/<widget key>/``.

Frames are small JSON objects. The visitor says ``hello`` first (with its token, or none to
become a new visitor), then ``message``, ``typing``, ``read`` and ``ping``; kefu answers
``welcome`` (token, texts, history), ``messages`` (what is new), ``ack``, ``typing`` and
``error``. Pushes from the rest of kefu are hints (``chat.sync``): the socket reads what is new
from the database itself, so a missed hint costs nothing but time and a visitor never sees
anything that is not theirs.

The Origin header is checked against the inbox's allowed storefront origins (this route is
outside the workspace's same-origin check on purpose: the widget lives on other sites).
"""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from kefu.accounts.ratelimit import scope_client_address
from kefu.connectors.chat import history, inbound, receipts, texts, visitors
from kefu.connectors.chat.config import ChatSettings, inbox_for_key, settings_of
from kefu.conversations.models import Inbox
from kefu.core.errors import InvalidInput
from kefu.workspace.consumers import conversation_group
from kefu.workspace.realtime import remember_consumer_loop

logger = logging.getLogger(__name__)

HELLO_TIMEOUT = 10.0
TYPING_STATES = ("typing", "viewing", "left")


def chat_group(conversation_id: int) -> str:
    return f"ws.chat.{conversation_id}"


def staffed_key(inbox_id: int) -> str:
    return f"chat.staffed.{inbox_id}"


@database_sync_to_async
def _open_inbox(widget_key: str) -> tuple[Inbox, ChatSettings] | None:
    inbox = inbox_for_key(widget_key)
    return None if inbox is None else (inbox, settings_of(inbox))


@database_sync_to_async
def _sync(inbox_id: int, widget_key: str, visitor: str, after_id: int) -> tuple[list, list, bool]:
    conversations = history.conversation_ids(inbox_id, visitor)
    found = history.messages_after(inbox_id, widget_key, conversations, after_id)
    return conversations, found, history.seen_by_agents(conversations) if conversations else False


@database_sync_to_async
def _store(inbox: Inbox, settings: ChatSettings, message: inbound.VisitorMessage, address: str):  # type: ignore[no-untyped-def]
    result = inbound.store(inbox=inbox, settings=settings, message=message, address=address)
    return result.message.pk, result.conversation.pk


@database_sync_to_async
def _receipt(inbox_id: int, visitor: str, up_to: int, status: str) -> None:
    receipts.mark_by_visitor(inbox_id=inbox_id, visitor=visitor, up_to=up_to, status=status)


class ChatConsumer(AsyncJsonWebsocketConsumer):
    inbox: Inbox
    settings: ChatSettings
    visitor: str | None = None
    name: str = ""
    last_id: int = 0
    conversations: list[int]
    hello_timer: asyncio.TimerHandle | None = None

    async def connect(self) -> None:
        widget_key = str(self.scope["url_route"]["kwargs"]["widget_key"])
        opened = await _open_inbox(widget_key)
        if opened is None or not opened[1].allows_origin(self._origin()):
            await self.close(code=4403)
            return
        self.inbox, self.settings = opened
        self.conversations = []
        remember_consumer_loop(asyncio.get_running_loop())
        await self.accept()
        self.hello_timer = asyncio.get_running_loop().call_later(
            HELLO_TIMEOUT, lambda: asyncio.ensure_future(self._hello_overdue())
        )

    def _origin(self) -> str:
        for name, value in self.scope.get("headers") or ():
            if name == b"origin":
                return value.decode("latin-1")
        return ""

    async def _hello_overdue(self) -> None:
        if self.visitor is None:
            await self.close(code=4408)

    async def disconnect(self, code: int) -> None:
        if self.hello_timer is not None:
            self.hello_timer.cancel()
        if self.visitor is None:
            return
        await self._tell_agents("left")
        for conversation_id in self.conversations:
            await self._leave(conversation_id)

    async def receive_json(self, content: object, **kwargs: object) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if self.visitor is None:
            if kind == "hello":
                await self._hello(content)
            return
        visitors.mark_online(self.visitor)
        if kind == "message":
            await self._message(content)
        elif kind == "typing" and content.get("state") in TYPING_STATES:
            await self._tell_agents(str(content["state"]))
        elif kind in receipts.RECEIPT_STATES and isinstance(content.get("up_to"), int):
            await _receipt(self.inbox.pk, self.visitor, int(content["up_to"]), str(kind))
        elif kind == "ping":
            await self.send_json({"type": "pong"})

    async def _hello(self, frame: dict) -> None:
        if self.hello_timer is not None:
            self.hello_timer.cancel()
        visitor = visitors.visitor_of(self.inbox.pk, frame.get("token"))
        token = frame.get("token") if visitor else None
        if visitor is None:
            visitor = visitors.new_visitor()
            token = visitors.issue_token(self.inbox.pk, visitor)
        self.visitor = visitor
        self.name = str(frame.get("name") or "")[:100]
        visitors.mark_online(visitor)
        language = texts.widget_language(frame.get("language"))
        self.conversations, found, seen = await _sync(
            self.inbox.pk, self.settings.widget_key, visitor, 0
        )
        for conversation_id in self.conversations:
            await self._join(conversation_id)
        self.last_id = found[-1]["id"] if found else 0
        await self.send_json(
            {
                "type": "welcome",
                "token": token,
                "language": language,
                "dir": texts.direction(language),
                "texts": texts.widget_texts(language),
                "greeting": self.settings.greeting_for(language),
                "available": await self._staffed(),
                "messages": found,
                "seen": seen,
            }
        )
        await self._tell_agents("viewing")

    async def _staffed(self) -> bool:
        from django.core.cache import cache

        return bool(await cache.aget(staffed_key(self.inbox.pk)))

    async def _message(self, frame: dict) -> None:
        assert self.visitor is not None
        try:
            message = inbound.parse_frame(self.visitor, frame)
            message_id, conversation_id = await _store(
                self.inbox, self.settings, message, scope_client_address(self.scope)
            )
        except InvalidInput as exc:
            await self._error("invalid", str(exc), frame)
            return
        except inbound.RateLimited as exc:
            await self._error("rate_limited", str(exc), frame)
            return
        if message.name:
            self.name = message.name
        if conversation_id not in self.conversations:
            self.conversations.append(conversation_id)
            await self._join(conversation_id)
        await self.send_json({"type": "ack", "client_id": message.client_id, "id": message_id})
        # The visitor's other tabs show it too.
        await self.channel_layer.group_send(
            chat_group(conversation_id), {"type": "chat.sync", "id": conversation_id}
        )

    async def _error(self, code: str, detail: str, frame: dict) -> None:
        await self.send_json(
            {"type": "error", "code": code, "detail": detail, "client_id": frame.get("client_id")}
        )

    async def _join(self, conversation_id: int) -> None:
        await self.channel_layer.group_add(chat_group(conversation_id), self.channel_name)
        # The agents' presence group: their typing reaches the visitor, and the visitor's them.
        await self.channel_layer.group_add(conversation_group(conversation_id), self.channel_name)

    async def _leave(self, conversation_id: int) -> None:
        await self.channel_layer.group_discard(chat_group(conversation_id), self.channel_name)
        await self.channel_layer.group_discard(
            conversation_group(conversation_id), self.channel_name
        )

    async def _tell_agents(self, state: str) -> None:
        """The visitor's presence, shaped as an agent's (the workspace shows "<name> is
        typing…"); the id marks it as the visitor's, never an agent's."""
        for conversation_id in self.conversations:
            await self.channel_layer.group_send(
                conversation_group(conversation_id),
                {
                    "type": "presence",
                    "id": conversation_id,
                    "agent_id": f"visitor:{self.channel_name}",
                    "agent": self.name or texts_customer(),
                    "state": state,
                },
            )

    # --- messages from the channel layer ------------------------------------------------------

    async def chat_sync(self, message: dict) -> None:
        assert self.visitor is not None
        conversations, found, seen = await _sync(
            self.inbox.pk, self.settings.widget_key, self.visitor, self.last_id
        )
        for conversation_id in set(conversations) - set(self.conversations):
            self.conversations.append(conversation_id)
            await self._join(conversation_id)
        if found:
            self.last_id = max(self.last_id, found[-1]["id"])
        await self.send_json({"type": "messages", "messages": found, "seen": seen})

    async def presence(self, message: dict) -> None:
        """An agent's presence on one of the visitor's conversations: only typing is shown
        (and by first name); whether agents are viewing stays inside the team."""
        if str(message.get("agent_id", "")).startswith("visitor:"):
            return
        state = "typing" if message.get("state") == "typing" else "idle"
        await self.send_json(
            {"type": "typing", "state": state, "name": str(message.get("agent", "")).split(" ")[0]}
        )


def texts_customer() -> str:
    from django.utils.translation import gettext

    return gettext("Customer")
