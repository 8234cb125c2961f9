"""The chat widget's websocket, spoken to kefu's real ASGI application (routing, origin check,
consumer, pipeline, database, channel layer)."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.core.cache import cache

from kefu.accounts.ratelimit import forget_all
from kefu.config.asgi import application
from kefu.connectors.chat import config
from kefu.conversations import actions
from kefu.conversations.models import Conversation, DeliveryStatus, InboxKind, Message
from kefu.conversations.tasks import deliver_message
from kefu.customers.models import Identity
from tests.factories import AgentFactory, InboxFactory
from tests.websockets import WebsocketCommunicator, received

pytestmark = pytest.mark.django_db(transaction=True)

SHOP = "https://shop.example"


@pytest.fixture(autouse=True)
def _fresh_limits():
    forget_all()
    cache.clear()
    yield
    forget_all()


@pytest.fixture
def chat_inbox(db):
    inbox = InboxFactory(kind=InboxKind.CHAT, name="Shop chat")
    config.configure(inbox, allowed_origins=[SHOP], greeting={"en": "Hi there"})
    inbox.save()
    return inbox


@pytest.fixture
def member(chat_inbox):
    from kefu.conversations.models import InboxMembership

    person = AgentFactory(display_name="Ada Lovelace")
    InboxMembership.objects.create(inbox=chat_inbox, agent=person)
    return person


def socket_for(inbox, origin: str = SHOP, key: str | None = None) -> WebsocketCommunicator:
    widget_key = key or config.settings_of(inbox).widget_key
    headers = [(b"origin", origin.encode())] if origin else []
    return WebsocketCommunicator(application, f"/ws/chat/{widget_key}/", headers)


async def open_visitor(inbox, token=None, language="en-US", name=""):
    socket = socket_for(inbox)
    connected, code = await socket.connect()
    assert connected, code
    await socket.send_json_to({"type": "hello", "token": token, "language": language, "name": name})
    welcome = await socket.receive_json_from()
    assert welcome["type"] == "welcome"
    return socket, welcome


async def say(socket, text, client_id, **extra):
    await socket.send_json_to({"type": "message", "text": text, "client_id": client_id, **extra})
    frames = await received(socket)
    return [f for f in frames if f["type"] == "ack"], frames


def test_an_unknown_widget_key_or_a_foreign_origin_is_refused(chat_inbox):
    async def scenario():
        unknown = socket_for(chat_inbox, key="wk_nope")
        assert await unknown.connect() == (False, 4403)
        foreign = socket_for(chat_inbox, origin="https://evil.example")
        assert await foreign.connect() == (False, 4403)

    asyncio.run(scenario())


def test_a_new_visitor_writes_and_the_message_lands_in_the_inbox(chat_inbox):
    async def scenario():
        socket, welcome = await open_visitor(chat_inbox, name="Li Wei")
        assert welcome["token"] and welcome["messages"] == []
        assert welcome["greeting"] == "Hi there"
        assert welcome["texts"]["send"] == "Send" and welcome["dir"] == "ltr"
        acks, _ = await say(socket, "Where is my order #1001?", "client-0001", name="Li Wei")
        await socket.disconnect()
        return welcome["token"], acks

    token, acks = asyncio.run(scenario())
    [ack] = acks
    message = Message.objects.get(pk=ack["id"])
    conversation = message.conversation
    assert conversation.inbox_id == chat_inbox.pk
    assert message.text == "Where is my order #1001?"
    assert conversation.customer.name == "Li Wei"
    visitor = conversation.thread_key.removeprefix("visitor:")
    assert (
        Identity.objects.get(kind="chat_visitor", value=visitor).customer == conversation.customer
    )
    assert token.startswith(visitor)


def test_the_same_client_id_twice_is_stored_once(chat_inbox):
    async def scenario():
        socket, _ = await open_visitor(chat_inbox)
        first, _ = await say(socket, "Hello", "client-same-1")
        second, _ = await say(socket, "Hello", "client-same-1")
        await socket.disconnect()
        return first, second

    first, second = asyncio.run(scenario())
    assert first[0]["id"] == second[0]["id"]
    assert Message.objects.count() == 1


def test_a_returning_visitor_gets_their_history_and_a_forged_token_gets_nothing(chat_inbox):
    async def scenario():
        socket, welcome = await open_visitor(chat_inbox)
        await say(socket, "First visit", "client-visit-1")
        await socket.disconnect()
        again, back = await open_visitor(chat_inbox, token=welcome["token"])
        await again.disconnect()
        forged_token = welcome["token"][:-4] + "abcd"
        stranger, forged = await open_visitor(chat_inbox, token=forged_token)
        await stranger.disconnect()
        return welcome, back, forged

    welcome, back, forged = asyncio.run(scenario())
    assert back["token"] == welcome["token"]
    assert [m["text"] for m in back["messages"]] == ["First visit"]
    assert forged["messages"] == [] and forged["token"] != welcome["token"]


def test_a_token_of_another_inbox_proves_nothing(chat_inbox):
    other = InboxFactory(kind=InboxKind.CHAT)
    config.configure(other)
    other.save()

    async def scenario():
        socket, welcome = await open_visitor(chat_inbox)
        await say(socket, "Mine", "client-mine-01")
        await socket.disconnect()
        elsewhere = socket_for(other)
        await elsewhere.connect()
        await elsewhere.send_json_to({"type": "hello", "token": welcome["token"]})
        answer = await elsewhere.receive_json_from()
        await elsewhere.disconnect()
        return welcome, answer

    welcome, answer = asyncio.run(scenario())
    assert answer["token"] != welcome["token"] and answer["messages"] == []


def test_an_agent_reply_reaches_the_visitor_and_a_note_never_does(chat_inbox, member):
    async def scenario():
        socket, _ = await open_visitor(chat_inbox)
        await say(socket, "Is this in stock?", "client-stock-1")
        conversation = await database_sync_to_async(Conversation.objects.get)()
        await database_sync_to_async(actions.add_note)(
            conversation=conversation, actor=member, text="internal: check the warehouse"
        )
        await database_sync_to_async(actions.reply)(
            conversation=conversation, actor=member, text="Yes, 12 left."
        )
        frames = await received(socket, timeout=2)
        await socket.disconnect()
        return frames

    frames = asyncio.run(scenario())
    texts = [m["text"] for f in frames if f["type"] == "messages" for m in f["messages"]]
    assert "Yes, 12 left." in texts
    assert not any("internal" in text for text in texts)
    reply = next(
        m for f in frames if f["type"] == "messages" for m in f["messages"] if m["from"] == "agent"
    )
    assert reply["author"] == "Ada"


def test_typing_goes_both_ways(chat_inbox, member):
    from channels.routing import URLRouter

    from kefu.config.routing import websocket_urlpatterns

    async def scenario():
        visitor, _ = await open_visitor(chat_inbox, name="Li Wei")
        await say(visitor, "Hello?", "client-typing-1", name="Li Wei")
        conversation = await database_sync_to_async(Conversation.objects.get)()
        agent_socket = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/workspace/")
        agent_socket.scope["user"] = member
        assert (await agent_socket.connect())[0]
        await agent_socket.send_json_to(
            {"type": "presence", "id": conversation.pk, "state": "typing"}
        )
        seen_by_visitor = await received(visitor)
        await visitor.send_json_to({"type": "typing", "state": "typing"})
        seen_by_agent = await received(agent_socket)
        await visitor.disconnect()
        await agent_socket.disconnect()
        return seen_by_visitor, seen_by_agent

    seen_by_visitor, seen_by_agent = asyncio.run(scenario())
    assert {"type": "typing", "state": "typing", "name": "Ada"} in seen_by_visitor
    typing = [f for f in seen_by_agent if f.get("type") == "presence" and f["state"] == "typing"]
    assert typing and typing[0]["agent"] == "Li Wei"


def test_new_conversations_per_address_are_limited_and_nothing_is_stored_past_it(chat_inbox):
    config.configure(chat_inbox, new_conversations_per_hour=2)
    chat_inbox.save()

    async def scenario():
        answers = []
        for n in range(3):
            socket, _ = await open_visitor(chat_inbox)
            _, frames = await say(socket, f"spam {n}", f"client-spam-{n:02d}")
            answers.append(frames)
            await socket.disconnect()
        return answers

    answers = asyncio.run(scenario())
    assert [f["type"] for f in answers[0] if f["type"] in ("ack", "error")] == ["ack"]
    assert [f["code"] for f in answers[2] if f["type"] == "error"] == ["rate_limited"]
    assert Conversation.objects.count() == 2


def test_bad_frames_get_a_clear_error_and_store_nothing(chat_inbox):
    async def scenario():
        socket, _ = await open_visitor(chat_inbox)
        await socket.send_json_to(
            {"type": "message", "text": "x" * 6000, "client_id": "client-long"}
        )
        too_long = await socket.receive_json_from()
        await socket.send_json_to({"type": "message", "text": "hi", "client_id": "bad id!"})
        bad_id = await socket.receive_json_from()
        await socket.disconnect()
        return too_long, bad_id

    too_long, bad_id = asyncio.run(scenario())
    assert too_long["type"] == "error" and "5000" in too_long["detail"]
    assert bad_id["type"] == "error" and "client_id" in bad_id["detail"]
    assert Message.objects.count() == 0


def test_texts_follow_the_visitor_language_with_arabic_right_to_left(chat_inbox):
    async def scenario():
        zh, zh_welcome = await open_visitor(chat_inbox, language="zh-CN")
        ar, ar_welcome = await open_visitor(chat_inbox, language="ar-SA")
        await zh.disconnect()
        await ar.disconnect()
        return zh_welcome, ar_welcome

    zh_welcome, ar_welcome = asyncio.run(scenario())
    assert zh_welcome["language"] == "zh-hans" and zh_welcome["texts"]["send"] == "发送"
    assert ar_welcome["dir"] == "rtl" and ar_welcome["texts"]["send"] != "Send"


def test_read_receipts_mark_the_reply_read(chat_inbox, member):
    async def scenario():
        socket, _ = await open_visitor(chat_inbox)
        await say(socket, "Question", "client-read-01")
        conversation = await database_sync_to_async(Conversation.objects.get)()
        reply = await database_sync_to_async(actions.reply)(
            conversation=conversation, actor=member, text="Answer"
        )
        await database_sync_to_async(deliver_message.call)(reply.pk)
        await socket.send_json_to({"type": "read", "up_to": reply.pk})
        await received(socket)
        await socket.disconnect()
        return reply.pk

    reply_id = asyncio.run(scenario())
    assert Message.objects.get(pk=reply_id).delivery_status == DeliveryStatus.READ


def test_team_only_changes_never_reach_the_visitor(chat_inbox, member):
    async def scenario():
        socket, _ = await open_visitor(chat_inbox)
        await say(socket, "Hello", "client-quiet-01")
        conversation = await database_sync_to_async(Conversation.objects.get)()
        await database_sync_to_async(actions.set_priority)(
            conversation=conversation, actor=member, priority="high"
        )
        await database_sync_to_async(actions.tag)(
            conversation=conversation, actor=member, names=["vip"]
        )
        frames = await received(socket, timeout=0.5)
        await socket.disconnect()
        return frames

    assert asyncio.run(scenario()) == []
