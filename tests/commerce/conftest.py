"""Helpers for the commerce tests: real orders through the real actions."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from kefu.accounts.models import Role
from kefu.commerce import actions
from kefu.commerce.models import PaymentStatus
from kefu.conversations.inbound import InboundMessage
from kefu.conversations.models import InboxMembership
from kefu.conversations.pipeline import receive_message
from tests.factories import AgentFactory, InboxFactory, StoreFactory

_ids = itertools.count(1001)


def make_order(store, *, number=None, email="buyer@example.com", currency="USD", lines=None,
               payment_status=PaymentStatus.PAID, **kw):  # fmt: skip
    """An order of ``store`` synced by upsert_order; lines 2 x 30.00 and 1 x 50.00 by default."""
    n = next(_ids)
    lines = lines if lines is not None else [
        actions.LineData(title="Blue mug", sku="MUG-B", quantity=2, unit_price=3000,
                         external_id=f"l{n}a"),
        actions.LineData(title="Teapot", sku="POT-1", quantity=1, unit_price=5000,
                         external_id=f"l{n}b"),
    ]  # fmt: skip
    subtotal = sum(line.quantity * line.unit_price for line in lines)
    data = actions.OrderData(
        external_id=kw.pop("external_id", f"gid-{n}"),
        number=number or f"#{n}",
        currency=currency,
        placed_at=kw.pop("placed_at", datetime(2026, 11, 1, 12, 0, tzinfo=UTC)),
        subtotal=subtotal,
        shipping=kw.pop("shipping", 0),
        total=kw.pop("total", subtotal),
        email=email,
        payment_status=payment_status,
        lines=lines,
        **kw,
    )
    order, _ = actions.upsert_order(store=store, data=data)
    return order


@pytest.fixture(autouse=True)
def _fresh_webhook_secrets():
    """Test databases reuse store ids: forget the secrets an earlier test's store had."""
    from kefu.commerce import webhooks

    webhooks._secrets.clear()
    yield
    webhooks._secrets.clear()


@pytest.fixture
def heard():
    """Every domain event dispatched during the test (after commit), in order."""
    from kefu.core.events import subscribe, unsubscribe

    events = []

    def listen(event):
        events.append(event)

    subscribe("*")(listen)
    yield events
    unsubscribe("*", listen)


def inbound(inbox, text, *, who="buyer@example.com"):
    message = InboundMessage(external_id=f"m-{next(_ids)}", identities=[("email", who)], text=text)
    return receive_message(inbox=inbox, message=message)


@pytest.fixture
def shop(db):
    return StoreFactory(name="Mugs", currency="USD")


@pytest.fixture
def inbox(shop):
    return InboxFactory(store=shop)


@pytest.fixture
def agent(inbox):
    person = AgentFactory(role=Role.AGENT)
    InboxMembership.objects.create(inbox=inbox, agent=person)
    return person


@pytest.fixture
def lead(inbox):
    person = AgentFactory(role=Role.LEAD)
    InboxMembership.objects.create(inbox=inbox, agent=person)
    return person
