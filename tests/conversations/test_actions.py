"""Each agent-facing action: what it changes, what it records, and what it refuses."""

from __future__ import annotations

import pytest

from kefu.accounts.models import Role
from kefu.conversations import actions
from kefu.conversations.inbound import InboundMessage
from kefu.conversations.models import (
    Conversation,
    ConversationEvent,
    ConversationMerge,
    DeliveryStatus,
    Direction,
    EventKind,
    Message,
    Priority,
    Status,
)
from kefu.core.errors import Conflict, InvalidInput
from kefu.customers import actions as customer_actions
from kefu.customers.identities import IdentityRef
from kefu.customers.models import Customer, Identity
from tests.factories import AgentFactory, InboxFactory, TeamFactory

pytestmark = pytest.mark.django_db


def receive(inbox, external_id, email="ana@example.com", text="Where is my order?", **kw):
    return actions.receive_message(
        inbox=inbox,
        message=InboundMessage(
            external_id=external_id, identities=[("email", email)], text=text, **kw
        ),
    ).conversation


def kinds(conversation):
    return list(
        ConversationEvent.objects.filter(conversation=conversation)
        .order_by("pk")
        .values_list("kind", flat=True)
    )


def test_reply_queues_an_outbound_message_and_can_set_status(inbox, agent):
    conversation = receive(inbox, "a")

    message = actions.reply(
        conversation=conversation, actor=agent, text="On its way", status=Status.PENDING
    )

    assert message.direction == Direction.OUTBOUND
    assert message.author_agent == agent
    assert message.delivery_status == DeliveryStatus.QUEUED
    conversation.refresh_from_db()
    assert conversation.status == Status.PENDING
    assert conversation.waiting_since is None
    assert kinds(conversation)[-2:] == [EventKind.REPLIED, EventKind.STATUS_CHANGED]


def test_reply_sanitizes_html_and_refuses_empty_text(inbox, agent):
    conversation = receive(inbox, "a")
    message = actions.reply(
        conversation=conversation, actor=agent, text="", html="<b>Hi</b><script>x()</script>"
    )
    assert message.html == "<b>Hi</b>"
    assert message.text == "Hi"
    with pytest.raises(InvalidInput):
        actions.reply(conversation=conversation, actor=agent, text="  ")
    assert Message.objects.filter(direction=Direction.OUTBOUND).count() == 1


def test_a_note_stays_internal_and_records_mentions(inbox, agent):
    lena = AgentFactory(username="lena")
    inbox.members.add(lena)  # only agents who can see the inbox are notified
    conversation = receive(inbox, "a")

    note = actions.add_note(conversation=conversation, actor=agent, text="@lena can you check?")

    assert note.direction == Direction.NOTE
    assert note.delivery_status == DeliveryStatus.SENT
    event = ConversationEvent.objects.get(kind=EventKind.NOTE_ADDED)
    assert event.data == {"mentions": [lena.pk]}
    conversation.refresh_from_db()
    assert conversation.unread_count == 1  # a note does not answer the customer
    assert conversation.waiting_since is not None


def test_assign_records_the_change_and_refuses_an_agent_without_access(inbox, agent):
    conversation = receive(inbox, "a")
    team = TeamFactory()
    stranger = AgentFactory()

    actions.assign(conversation=conversation, actor=agent, assignee=agent, team=team)
    conversation.refresh_from_db()
    assert (conversation.assignee, conversation.team) == (agent, team)
    assert ConversationEvent.objects.get(kind=EventKind.ASSIGNED).data == {
        "from_assignee": None,
        "to_assignee": agent.pk,
        "team": team.pk,
    }

    with pytest.raises(InvalidInput):
        actions.assign(conversation=conversation, actor=agent, assignee=stranger)
    conversation.refresh_from_db()
    assert conversation.assignee == agent

    actions.assign(conversation=conversation, actor=agent, assignee=agent)  # no change
    assert ConversationEvent.objects.filter(kind=EventKind.ASSIGNED).count() == 1


def test_an_admin_can_be_assigned_anywhere(inbox, agent):
    admin = AgentFactory(role=Role.ADMIN)
    conversation = receive(inbox, "a")
    actions.assign(conversation=conversation, actor=agent, assignee=admin)
    conversation.refresh_from_db()
    assert conversation.assignee == admin


def test_status_changes_set_solved_time_and_closed_is_final(inbox, agent):
    conversation = receive(inbox, "a")

    actions.set_status(conversation=conversation, actor=agent, status=Status.SOLVED)
    conversation.refresh_from_db()
    assert conversation.solved_at is not None

    actions.set_status(conversation=conversation, actor=agent, status=Status.OPEN)
    conversation.refresh_from_db()
    assert conversation.solved_at is None

    actions.set_status(conversation=conversation, actor=agent, status=Status.CLOSED)
    with pytest.raises(Conflict):
        actions.set_status(conversation=conversation, actor=agent, status=Status.OPEN)
    with pytest.raises(InvalidInput):
        actions.set_status(conversation=conversation, actor=agent, status="archived")
    assert Conversation.objects.get().status == Status.CLOSED
    assert kinds(conversation).count(EventKind.STATUS_CHANGED) == 3


def test_priority(inbox, agent):
    conversation = receive(inbox, "a")
    actions.set_priority(conversation=conversation, actor=agent, priority=Priority.URGENT)
    assert Conversation.objects.get().priority == Priority.URGENT
    with pytest.raises(InvalidInput):
        actions.set_priority(conversation=conversation, actor=agent, priority="whenever")
    assert ConversationEvent.objects.get(kind=EventKind.PRIORITY_CHANGED).data == {
        "from": "normal",
        "to": "urgent",
    }


def test_tags_are_normalized_and_only_changes_are_recorded(inbox, agent):
    conversation = receive(inbox, "a")

    added = actions.tag(
        conversation=conversation, actor=agent, names=["Refund ", "wismo", "refund"]
    )
    again = actions.tag(conversation=conversation, actor=agent, names=["refund"])
    removed = actions.untag(conversation=conversation, actor=agent, names=["WISMO", "unknown"])

    assert (added, again, removed) == (["refund", "wismo"], [], ["wismo"])
    assert list(conversation.tags.values_list("name", flat=True)) == ["refund"]
    assert kinds(conversation).count(EventKind.TAGGED) == 1
    with pytest.raises(InvalidInput):
        actions.tag(conversation=conversation, actor=agent, names=["x" * 65])


def test_mark_read(inbox, agent):
    conversation = receive(inbox, "a")
    actions.mark_read(conversation=conversation, actor=agent)
    assert Conversation.objects.get().unread_count == 0


def test_merge_moves_messages_and_unmerge_brings_them_back(inbox, agent):
    other_inbox = InboxFactory(store=inbox.store)
    target = receive(inbox, "a", text="First request")
    source = receive(other_inbox, "b", text="Second request, same customer")
    actions.reply(conversation=source, actor=agent, text="Answer in the second one")

    merge = actions.merge_conversations(source=source, target=target, actor=agent)

    source.refresh_from_db()
    target.refresh_from_db()
    assert source.merged_into == target and source.status == Status.CLOSED
    assert target.message_count == 3
    assert source.messages.count() == 0
    assert target.last_message_preview == "Answer in the second one"
    assert EventKind.MERGED in kinds(source) and EventKind.MERGED in kinds(target)
    with pytest.raises(Conflict):
        actions.merge_conversations(source=source, target=target, actor=agent)

    actions.unmerge_conversations(merge=merge, actor=agent)

    source.refresh_from_db()
    target.refresh_from_db()
    assert source.merged_into is None and source.status == Status.OPEN
    assert source.messages.count() == 2 and target.messages.count() == 1
    assert target.message_count == 1 and target.last_message_preview == "First request"
    assert ConversationMerge.objects.get().undone_at is not None
    with pytest.raises(Conflict):
        actions.unmerge_conversations(merge=merge, actor=agent)


def test_merge_refuses_two_customers_or_itself(inbox, agent):
    a = receive(inbox, "a", email="a@example.com")
    b = receive(inbox, "b", email="b@example.com")
    with pytest.raises(InvalidInput):
        actions.merge_conversations(source=a, target=b, actor=agent)
    with pytest.raises(InvalidInput):
        actions.merge_conversations(source=a, target=a, actor=agent)
    assert ConversationMerge.objects.count() == 0


def test_a_reply_to_a_merged_conversation_threads_into_the_target(inbox, agent):
    other_inbox = InboxFactory(store=inbox.store)
    target = receive(inbox, "a")
    source = receive(other_inbox, "b")
    actions.merge_conversations(source=source, target=target, actor=agent)

    follow_up = actions.receive_message(
        inbox=other_inbox,
        message=InboundMessage(
            external_id="c",
            identities=[("email", "ana@example.com")],
            text="More",
            references=["b"],
        ),
    )
    assert follow_up.conversation.pk == target.pk


def test_link_identity_refuses_one_owned_by_another_customer(inbox, agent):
    ana = receive(inbox, "a", email="ana@example.com").customer
    ben = receive(inbox, "b", email="ben@example.com").customer

    customer_actions.link_identity(
        customer=ana, identity=IdentityRef("phone", "+14155550100"), actor=agent
    )
    with pytest.raises(Conflict):
        customer_actions.link_identity(
            customer=ben, identity=IdentityRef("email", "ana@example.com"), actor=agent
        )
    assert Customer.objects.get(pk=ana.pk).phone == "+14155550100"
    assert Identity.objects.get(value="ana@example.com").customer_id == ana.pk


def test_merge_customers_and_undo(inbox, agent):
    ana_email = receive(inbox, "a", email="ana@example.com")
    ana_phone = actions.receive_message(
        inbox=inbox,
        message=InboundMessage(
            external_id="b", identities=[("phone", "+14155550100")], text="hi!!"
        ),
    ).conversation
    source, target = ana_phone.customer, ana_email.customer

    merge = customer_actions.merge_customers(source=source, target=target, actor=agent)

    assert Identity.objects.filter(customer=target).count() == 2
    assert Conversation.objects.filter(customer=target).count() == 2
    assert Customer.objects.get(pk=source.pk).merged_into_id == target.pk
    # A later message by phone lands on the merged customer's record
    later = actions.receive_message(
        inbox=inbox,
        message=InboundMessage(
            external_id="c", identities=[("phone", "4155550100")], text="hi again"
        ),
    )
    assert later.conversation.customer_id == target.pk

    customer_actions.unmerge_customers(merge=merge, actor=agent)

    assert Identity.objects.get(kind="phone").customer_id == source.pk
    assert Conversation.objects.get(pk=ana_phone.pk).customer_id == source.pk
    assert Customer.objects.get(pk=source.pk).merged_into_id is None
    with pytest.raises(Conflict):
        customer_actions.unmerge_customers(merge=merge, actor=agent)
