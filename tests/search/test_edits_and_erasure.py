"""Search kept in step with a customer's edit of their message and with a customer's erasure,
through the actions that make them (a Telegram edit delivered by webhook; an admin's erasure)."""

from __future__ import annotations

import pytest

from kefu.accounts.models import AuditLog, Role
from kefu.conversations.actions import edit_inbound_message
from kefu.conversations.models import Inbox, InboxMembership, Message
from kefu.core.errors import Forbidden
from kefu.customers.actions import ERASED_TEXT, erase_customer
from kefu.customers.models import Customer, Identity
from kefu.search.service import search
from tests.factories import AgentFactory, StoreFactory
from tests.search.conftest import conversation_ids, customer_ids, receive

pytestmark = pytest.mark.django_db


@pytest.fixture
def inbox(db):
    return Inbox.objects.create(name="Shop", kind="api", store=StoreFactory())


@pytest.fixture
def admin(inbox):
    person = AgentFactory(role=Role.ADMIN)
    InboxMembership.objects.create(inbox=inbox, agent=person)
    return person


def test_an_edited_message_is_found_by_its_new_words_only(inbox, admin, committed):
    with committed():
        result = receive(inbox, "m-1", "my parcel to Valparaiso is late")
    with committed():
        edit_inbound_message(message=result.message, text="my parcel to Antofagasta is late")
    assert conversation_ids(search(agent=admin, q="Antofagasta")) == [result.conversation.pk]
    assert conversation_ids(search(agent=admin, q="Valparaiso")) == []
    message = Message.objects.get(pk=result.message.pk)
    assert message.metadata["edits"][0]["text"] == "my parcel to Valparaiso is late"


def test_an_edit_older_than_the_stored_version_changes_nothing(inbox):
    from datetime import timedelta

    from django.utils import timezone

    result = receive(inbox, "m-2", "first")
    now = timezone.now()
    edit_inbound_message(message=result.message, text="second", at=now)
    edit_inbound_message(message=result.message, text="stale", at=now - timedelta(seconds=5))
    assert Message.objects.get(pk=result.message.pk).text == "second"


def test_an_erased_customer_is_found_by_nothing(inbox, admin, committed):
    with committed():
        result = receive(
            inbox, "m-3", "Zhang Wei here, ship to 88 Huaihai Road", email="zw@example.com",
            name="Zhang Wei",
        )  # fmt: skip
    customer = result.conversation.customer
    assert customer_ids(search(agent=admin, q="zw@example.com")) == [customer.pk]
    with committed():
        erase_customer(customer=customer, actor=admin)
    assert conversation_ids(search(agent=admin, q="Huaihai")) == []
    assert customer_ids(search(agent=admin, q="zw@example.com")) == []
    assert customer_ids(search(agent=admin, q="Zhang")) == []
    customer = Customer.objects.get(pk=customer.pk)
    assert customer.email == "" and not Identity.objects.filter(customer=customer).exists()
    assert Message.objects.get(pk=result.message.pk).text == ERASED_TEXT
    entry = AuditLog.objects.get(action="customer.erased")
    assert entry.actor == admin and "Zhang" not in str(entry.data)


def test_only_an_admin_erases(inbox):
    result = receive(inbox, "m-4", "hello", email="a@example.com")
    agent = AgentFactory(role=Role.AGENT)
    with pytest.raises(Forbidden):
        erase_customer(customer=result.conversation.customer, actor=agent)
    assert Identity.objects.filter(customer=result.conversation.customer).exists()
