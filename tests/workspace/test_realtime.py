"""The agent websocket: pushes reach the agents who may see the inbox, and nobody else."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from django.contrib.auth.models import AnonymousUser

from kefu.accounts import actions as accounts_actions
from kefu.accounts.models import Role
from kefu.config.routing import websocket_urlpatterns
from kefu.conversations import actions
from kefu.conversations.inbound import InboundMessage
from kefu.conversations.models import InboxMembership
from kefu.conversations.pipeline import receive_message
from tests.factories import AgentFactory, InboxFactory
from tests.websockets import WebsocketCommunicator, received

pytestmark = pytest.mark.django_db(transaction=True)

APP = URLRouter(websocket_urlpatterns)


async def connect(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(APP, "/ws/workspace/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


def write(inbox, external_id="m-1"):
    return receive_message(
        inbox=inbox,
        message=InboundMessage(
            external_id=external_id, identities=[("email", "ana@example.com")], text="Hello"
        ),
    ).conversation


def test_a_member_hears_of_new_and_changed_conversations_an_outsider_never(agent, inbox):
    outsider = AgentFactory()

    async def scenario():
        member_socket = await connect(agent)
        outsider_socket = await connect(outsider)
        conversation = await database_sync_to_async(write)(inbox)
        await database_sync_to_async(actions.set_priority)(
            conversation=conversation, actor=agent, priority="high"
        )
        heard = await received(member_socket)
        overheard = await received(outsider_socket, timeout=0.3)
        await member_socket.disconnect()
        await outsider_socket.disconnect()
        return conversation.pk, heard, overheard

    pk, heard, overheard = asyncio.run(scenario())
    assert {"type": "conversation.created", "id": pk} in heard
    assert {"type": "conversation.updated", "id": pk} in heard
    assert all(set(event) == {"type", "id"} for event in heard)  # a hint, never content
    assert overheard == []


def test_an_anonymous_socket_is_refused():
    async def scenario():
        communicator = WebsocketCommunicator(APP, "/ws/workspace/")
        communicator.scope["user"] = AnonymousUser()
        connected, code = await communicator.connect()
        return connected, code

    connected, code = asyncio.run(scenario())
    assert not connected and code == 4401


def test_access_granted_or_removed_takes_effect_on_an_open_socket(transactional_db):
    admin = AgentFactory(role=Role.ADMIN)
    person = AgentFactory()
    inbox = InboxFactory()

    async def scenario():
        socket = await connect(person)
        await database_sync_to_async(accounts_actions.set_inboxes)(
            agent=person, inboxes=[inbox], actor=admin
        )
        first = await received(socket)
        conversation = await database_sync_to_async(write)(inbox, "a")
        granted = await received(socket)
        await database_sync_to_async(accounts_actions.set_inboxes)(
            agent=person, inboxes=[], actor=admin
        )
        await received(socket)
        await database_sync_to_async(actions.set_priority)(
            conversation=conversation, actor=admin, priority="urgent"
        )
        removed = await received(socket, timeout=0.3)
        await socket.disconnect()
        return conversation.pk, first, granted, removed

    pk, first, granted, removed = asyncio.run(scenario())
    assert {"type": "access.changed"} in first
    assert {"type": "conversation.created", "id": pk} in granted
    assert removed == []


def presence(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] == "presence"]


def test_presence_reaches_colleagues_on_the_same_conversation_and_no_outsider(agent, inbox):
    colleague = AgentFactory(display_name="Bea")
    InboxMembership.objects.create(inbox=inbox, agent=colleague)
    outsider = AgentFactory(display_name="Eve")
    conversation = write(inbox)

    async def scenario():
        ada, bea, eve = await connect(agent), await connect(colleague), await connect(outsider)
        await bea.send_json_to({"type": "presence", "id": conversation.pk, "state": "viewing"})
        await received(bea, timeout=0.3)
        # An outsider naming the conversation is ignored: it joins nothing, tells nobody
        await eve.send_json_to({"type": "presence", "id": conversation.pk, "state": "viewing"})
        await ada.send_json_to({"type": "presence", "id": conversation.pk, "state": "typing"})
        heard_by_bea = presence(await received(bea))
        heard_by_ada = presence(await received(ada, timeout=0.3))
        heard_by_eve = presence(await received(eve, timeout=0.3))
        for socket in (ada, bea, eve):
            await socket.disconnect()
        return heard_by_bea, heard_by_ada, heard_by_eve

    heard_by_bea, heard_by_ada, heard_by_eve = asyncio.run(scenario())
    assert heard_by_bea == [
        {
            "type": "presence",
            "id": conversation.pk,
            "agent_id": agent.pk,
            "agent": agent.name,
            "state": "typing",
        }
    ]
    assert heard_by_ada == []  # Bea announced before Ada was watching; no echo of one's own
    assert heard_by_eve == []


def test_a_burst_of_conversations_reaches_the_socket_in_one_group_message(
    agent, inbox, monkeypatch
):
    from channels.layers import get_channel_layer

    from kefu.conversations.batch import receive_batch

    layer = get_channel_layer()
    sent_to_inbox: list[dict] = []
    original = layer.group_send

    async def counting_group_send(group, message):
        if group == f"ws.inbox.{inbox.pk}":
            sent_to_inbox.append(message)
        await original(group, message)

    monkeypatch.setattr(layer, "group_send", counting_group_send)

    def write_burst():
        entries = [
            (
                inbox,
                InboundMessage(
                    external_id=f"b-{n}", identities=[("email", f"c{n}@x.com")], text="Hello"
                ),
            )
            for n in range(30)
        ]
        return {r["conversation_id"] for r in receive_batch(entries)}

    async def scenario():
        socket = await connect(agent)
        created = await database_sync_to_async(write_burst)()
        heard = await received(socket, timeout=1.0)
        await socket.disconnect()
        return created, heard

    created, heard = asyncio.run(scenario())
    assert len(created) == 30
    assert {e["id"] for e in heard if e["type"] == "conversation.created"} == created
    assert len(sent_to_inbox) <= 2  # not one per event (two if a flush fell mid-burst)
