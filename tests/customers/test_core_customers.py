"""Customers and identities: normalization, linking, merging and undoing merges, scoped reads."""

from __future__ import annotations

import pytest

from kefu.accounts.models import Role
from kefu.conversations import actions as conversation_actions
from kefu.conversations.inbound import InboundMessage
from kefu.conversations.models import Conversation, ConversationEvent, EventKind
from kefu.core.errors import Conflict, InvalidInput, NotFound
from kefu.core.events import subscribe, unsubscribe
from kefu.customers import actions
from kefu.customers.identities import IdentityRef, normalize
from kefu.customers.models import Customer, CustomerMerge, Identity
from kefu.customers.selectors import customer_conversations, customers_visible_to, get_customer
from tests.factories import AgentFactory, CustomerFactory, IdentityFactory, InboxFactory

pytestmark = pytest.mark.django_db


def receive(inbox, external_id, identities, text="Hello, where is my order?"):
    return conversation_actions.receive_message(
        inbox=inbox,
        message=InboundMessage(external_id=external_id, identities=identities, text=text),
    ).conversation


@pytest.fixture
def events():
    seen: list = []

    def handler(event):
        seen.append((event.name, event.payload))

    subscribe("*")(handler)
    yield seen
    unsubscribe("*", handler)


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


# --- normalization -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "raw", "region", "value"),
    [
        ("email", "  Ana.Lopez@Example.COM ", "US", "ana.lopez@example.com"),
        ("phone", "+1 415-555-0100", "US", "+14155550100"),
        ("phone", "(415) 555-0100", "US", "+14155550100"),
        ("phone", "004915123456789", "US", "+4915123456789"),
        ("phone", "+49 151 23456789", "US", "+4915123456789"),
        ("phone", "0151 23456789", "DE", "+4915123456789"),
        ("phone", "138 0013 8000", "CN", "+8613800138000"),
        ("external", "  crm-42 ", "US", "crm-42"),
        ("chat_visitor", "v_9f2", "US", "v_9f2"),
    ],
)
def test_identities_are_normalized(kind, raw, region, value):
    assert normalize(kind, raw, default_region=region) == IdentityRef(kind, value)


@pytest.mark.parametrize(
    ("kind", "raw", "field"),
    [
        ("email", "ana@", "email"),
        ("email", "", "email"),
        ("email", "x" * 250 + "@example.com", "email"),
        ("phone", "12", "phone"),
        ("phone", "not a number", "phone"),
        ("external", "x" * 255, "external"),
        ("fax", "123", "kind"),
    ],
)
def test_unusable_identities_are_refused_with_the_field(kind, raw, field):
    with pytest.raises(InvalidInput) as refused:
        normalize(kind, raw)
    assert refused.value.field == field


# --- link_identity -----------------------------------------------------------------------------


def test_link_identity_attaches_and_fills_the_contact_fields(events, committed):
    ana = CustomerFactory(email="", phone="")

    with committed():
        linked = actions.link_identity(
            customer=ana, identity=IdentityRef("phone", "+14155550100"), actor=None
        )

    assert (linked.customer_id, linked.kind, linked.value) == (ana.pk, "phone", "+14155550100")
    assert Customer.objects.get(pk=ana.pk).phone == "+14155550100"
    assert events == [("customer.updated", {"customer_id": ana.pk, "actor_id": None})]


def test_linking_an_identity_twice_changes_nothing(events, committed):
    identity = IdentityFactory(kind="email", value="ana@example.com")

    with committed():
        again = actions.link_identity(
            customer=identity.customer, identity=IdentityRef("email", "ana@example.com"), actor=None
        )

    assert again.pk == identity.pk
    assert Identity.objects.count() == 1
    assert events == []


def test_an_identity_owned_by_another_customer_is_a_conflict(events, committed):
    ana = IdentityFactory(kind="email", value="ana@example.com").customer
    ben = CustomerFactory(email="")

    with committed(), pytest.raises(Conflict) as refused:
        actions.link_identity(
            customer=ben, identity=IdentityRef("email", "ana@example.com"), actor=None
        )

    assert "merge" in refused.value.message
    assert Identity.objects.get().customer_id == ana.pk
    assert Customer.objects.get(pk=ben.pk).email == ""
    assert events == []


def test_an_identity_cannot_be_linked_to_a_merged_customer():
    live = CustomerFactory()
    old = CustomerFactory(merged_into=live)

    with pytest.raises(Conflict):
        actions.link_identity(customer=old, identity=IdentityRef("email", "a@b.co"), actor=None)
    assert Identity.objects.count() == 0


# --- merge_customers / unmerge_customers -------------------------------------------------------


@pytest.fixture
def two_records(inbox):
    """One person known twice: by email (the target) and by phone (the source)."""
    by_email = receive(inbox, "1", [("email", "ana@example.com")])
    by_phone = receive(inbox, "2", [("phone", "+1 415 555 0100")], text="Hola, mi pedido")
    return by_phone.customer, by_email.customer, by_phone, by_email


def test_merge_moves_identities_and_conversations_and_records_it(two_records, agent, events,
                                                                  committed):  # fmt: skip
    source, target, phone_conversation, email_conversation = two_records

    with committed():
        merge = actions.merge_customers(source=source, target=target, actor=agent)

    assert (merge.source_id, merge.target_id, merge.merged_by_id) == (
        source.pk,
        target.pk,
        agent.pk,
    )
    assert merge.identity_ids == [Identity.objects.get(kind="phone").pk]
    assert merge.conversation_ids == [phone_conversation.pk]
    assert set(Identity.objects.values_list("customer_id", flat=True)) == {target.pk}
    assert set(Conversation.objects.values_list("customer_id", flat=True)) == {target.pk}
    assert Customer.objects.get(pk=source.pk).merged_into_id == target.pk
    changed = ConversationEvent.objects.get(kind=EventKind.CUSTOMER_CHANGED)
    assert changed.conversation_id == phone_conversation.pk
    assert changed.actor_id == agent.pk
    assert changed.data == {"from": source.pk, "to": target.pk, "merge": merge.pk}
    assert not ConversationEvent.objects.filter(
        conversation=email_conversation, kind=EventKind.CUSTOMER_CHANGED
    ).exists()
    assert ("customer.merged", {"source_id": source.pk, "target_id": target.pk,
                                "merge_id": merge.pk}) in events  # fmt: skip


def test_after_a_merge_the_sources_identities_lead_to_the_target(two_records, inbox, agent):
    source, target, *_ = two_records
    actions.merge_customers(source=source, target=target, actor=agent)

    later = receive(inbox, "3", [("phone", "(415) 555-0100")])

    assert later.customer_id == target.pk


def test_unmerge_moves_everything_back(two_records, agent, events, committed):
    source, target, phone_conversation, email_conversation = two_records
    merge = actions.merge_customers(source=source, target=target, actor=agent)

    with committed():
        restored = actions.unmerge_customers(merge=merge, actor=agent)

    assert restored.pk == source.pk and restored.merged_into_id is None
    assert Identity.objects.get(kind="phone").customer_id == source.pk
    assert Identity.objects.get(kind="email").customer_id == target.pk
    assert Conversation.objects.get(pk=phone_conversation.pk).customer_id == source.pk
    assert Conversation.objects.get(pk=email_conversation.pk).customer_id == target.pk
    assert CustomerMerge.objects.get().undone_at is not None
    changes = ConversationEvent.objects.filter(kind=EventKind.CUSTOMER_CHANGED).order_by("pk")
    assert [(e.conversation_id, e.data["from"], e.data["to"]) for e in changes] == [
        (phone_conversation.pk, source.pk, target.pk),
        (phone_conversation.pk, target.pk, source.pk),
    ]
    assert ("customer.unmerged", {"source_id": source.pk, "target_id": target.pk}) in events


def test_a_conversation_started_after_the_merge_stays_with_the_target(two_records, inbox, agent):
    source, target, *_ = two_records
    merge = actions.merge_customers(source=source, target=target, actor=agent)
    other_inbox = InboxFactory(store=inbox.store)
    later = receive(other_inbox, "3", [("phone", "+14155550100")])

    actions.unmerge_customers(merge=merge, actor=agent)

    assert Conversation.objects.get(pk=later.pk).customer_id == target.pk


def test_merge_refuses_itself_and_merged_customers(two_records, agent):
    source, target, *_ = two_records
    third = CustomerFactory()

    with pytest.raises(InvalidInput):
        actions.merge_customers(source=target, target=target, actor=agent)
    actions.merge_customers(source=source, target=target, actor=agent)
    with pytest.raises(Conflict):
        actions.merge_customers(source=source, target=third, actor=agent)  # source merged
    with pytest.raises(Conflict):
        actions.merge_customers(source=third, target=source, actor=agent)  # target merged

    assert CustomerMerge.objects.count() == 1
    assert Customer.objects.get(pk=third.pk).merged_into_id is None


def test_an_undone_merge_cannot_be_undone_again(two_records, agent):
    source, target, *_ = two_records
    merge = actions.merge_customers(source=source, target=target, actor=agent)
    actions.unmerge_customers(merge=merge, actor=agent)

    with pytest.raises(Conflict):
        actions.unmerge_customers(merge=merge, actor=agent)


def test_a_merge_cannot_be_undone_while_its_target_is_merged_elsewhere(two_records, agent):
    source, target, phone_conversation, _ = two_records
    third = CustomerFactory()
    first = actions.merge_customers(source=source, target=target, actor=agent)
    second = actions.merge_customers(source=target, target=third, actor=agent)

    with pytest.raises(Conflict):
        actions.unmerge_customers(merge=first, actor=agent)
    assert Identity.objects.get(kind="phone").customer_id == third.pk

    actions.unmerge_customers(merge=second, actor=agent)
    actions.unmerge_customers(merge=first, actor=agent)
    assert Identity.objects.get(kind="phone").customer_id == source.pk
    assert Conversation.objects.get(pk=phone_conversation.pk).customer_id == source.pk


# --- scoped reads ------------------------------------------------------------------------------


def test_an_agent_sees_the_customers_of_their_inboxes_only(inbox, agent, outsider):
    foreign_inbox = InboxFactory()
    mine = receive(inbox, "1", [("email", "mine@example.com")]).customer
    theirs = receive(foreign_inbox, "2", [("email", "theirs@example.com")]).customer
    admin = AgentFactory(role=Role.ADMIN)

    assert list(customers_visible_to(agent)) == [mine]
    assert list(customers_visible_to(outsider)) == []
    assert set(customers_visible_to(admin)) == {mine, theirs}
    assert get_customer(agent, mine.pk) == mine
    with pytest.raises(NotFound):
        get_customer(agent, theirs.pk)
    with pytest.raises(NotFound):
        get_customer(agent, 999_999)


def test_a_customer_on_two_channels_shows_only_the_conversations_the_agent_may_see(inbox, agent):
    foreign_inbox = InboxFactory(store=inbox.store)
    mine = receive(inbox, "1", [("email", "ana@example.com")])
    receive(foreign_inbox, "2", [("email", "ana@example.com")])

    assert list(customer_conversations(agent, mine.customer)) == [mine]


def test_an_inactive_agent_sees_no_customer(inbox, agent):
    receive(inbox, "1", [("email", "ana@example.com")])
    agent.is_active = False
    agent.save()
    assert list(customers_visible_to(agent)) == []
