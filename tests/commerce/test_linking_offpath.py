"""Order linking runs off the ingest path: after commit, batched, in a thread of the process."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from kefu.commerce import subscribers
from kefu.commerce.models import ConversationOrder, Order
from kefu.conversations.inbound import InboundMessage
from kefu.conversations.pipeline import receive_message
from tests.factories import CustomerFactory, InboxFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_committed_message_naming_an_order_is_linked_shortly_after(monkeypatch):
    monkeypatch.setattr(subscribers, "LINK_DELAY", 0.3)
    inbox = InboxFactory(kind="email")
    order = Order.objects.create(
        store=inbox.store,
        customer=CustomerFactory(),
        number="#1042",
        external_id="1042",
        currency="USD",
        placed_at=timezone.now(),
    )

    started = time.perf_counter()
    result = receive_message(
        inbox=inbox,
        message=InboundMessage(
            external_id="m-1",
            identities=[("email", "ana@example.com")],
            text="Where is order #1042?",
        ),
    )
    stored_at = time.perf_counter() - started
    # Not linked inside receive_message: the link comes from the background pass
    linked_at_once = ConversationOrder.objects.filter(order=order).exists()

    deadline = time.monotonic() + 5
    while not ConversationOrder.objects.filter(order=order).exists():
        assert time.monotonic() < deadline, "the order was never linked"
        time.sleep(0.05)
    link = ConversationOrder.objects.get(order=order)
    assert link.conversation_id == result.conversation.pk
    assert not linked_at_once and stored_at < 5
