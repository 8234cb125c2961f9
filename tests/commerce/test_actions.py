"""Commerce actions: sync, linking, refunds with limits and approval, cancel, returns, disputes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kefu.commerce import actions, platforms, selectors
from kefu.commerce.models import (
    ConversationOrder,
    DisputeStatus,
    OrderEvent,
    OrderStatus,
    PaymentStatus,
    Refund,
    RefundStatus,
    ReturnStatus,
)
from kefu.commerce.platforms import PlatformError
from kefu.conversations.models import ConversationEvent, EventKind
from kefu.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from kefu.customers.models import Identity
from tests.commerce.conftest import inbound, make_order
from tests.factories import AgentFactory, ConversationFactory, StoreFactory


def order_kinds(order):
    return list(
        OrderEvent.objects.filter(order=order).order_by("id").values_list("kind", flat=True)
    )


def conversation_actions(conversation):
    return [
        e.data["action"]
        for e in ConversationEvent.objects.filter(
            conversation=conversation, kind=EventKind.ORDER_ACTION
        ).order_by("id")
    ]


# --- sync ---------------------------------------------------------------------------------------


def test_upsert_creates_then_updates_one_order_and_resolves_the_customer(shop):
    order = make_order(shop, external_id="gid-1", number="#1001", email="Buyer@Example.com")
    assert Identity.objects.get(kind="email", value="buyer@example.com").customer == order.customer
    again = make_order(shop, external_id="gid-1", number="#1001", payment_status="refunded")
    assert again.pk == order.pk
    assert again.payment_status == PaymentStatus.REFUNDED
    assert again.lines.count() == 2
    assert order_kinds(order) == ["created", "synced"]


@pytest.mark.parametrize(
    "bad",
    [
        {"currency": "dollars"},
        {"total": -1},
        {"payment_status": "maybe"},
        {"refunded": 10**6},
    ],
)
def test_upsert_refuses_inconsistent_snapshots_and_writes_nothing(shop, bad):
    with pytest.raises(InvalidInput):
        make_order(shop, **bad)
    assert not shop.orders.exists()


def test_shipment_status_change_emits_shipment_updated(
    shop, heard, django_capture_on_commit_callbacks
):
    order = make_order(shop)
    with django_capture_on_commit_callbacks(execute=True):
        shipment = actions.upsert_shipment(
            order=order,
            external_id="f1",
            carrier="ups",
            tracking_number="1z999aa10123456784",
            status="in_transit",
            events=[
                {"at": "2026-11-03T10:00:00Z", "status": "in_transit", "location": "Louisville"},
                {"at": "2026-11-02T09:00:00Z", "status": "label_created", "location": "Austin"},
            ],
        )
    assert shipment.tracking_number == "1Z999AA10123456784"
    assert [e["status"] for e in shipment.events] == ["label_created", "in_transit"]
    assert [e.name for e in heard if e.name.startswith("shipment.")] == ["shipment.updated"]
    with pytest.raises(InvalidInput):
        actions.upsert_shipment(
            order=order, external_id="f1", carrier="ups", tracking_number="x", status="lost"
        )


# --- linking ------------------------------------------------------------------------------------


def test_inbound_message_naming_an_order_links_it(
    inbox, shop, heard, django_capture_on_commit_callbacks
):
    order = make_order(shop, number="#1001")
    other_shop_order = make_order(StoreFactory(), number="#1001", email="someone@else.test")
    with django_capture_on_commit_callbacks(execute=True):
        result = inbound(inbox, "Hi, where is my order #1001?")
    conversation = result.conversation
    linked = ConversationOrder.objects.filter(conversation=conversation)
    assert [link.order_id for link in linked] == [order.pk]
    assert other_shop_order.pk not in [link.order_id for link in linked]
    assert conversation_actions(conversation) == ["linked"]
    linked_events = [e for e in heard if e.name == "order.updated"]
    assert linked_events[-1].payload["conversation_ids"] == [conversation.pk]


def test_tracking_number_in_a_message_links_its_order(
    inbox, shop, django_capture_on_commit_callbacks
):
    order = make_order(shop)
    actions.upsert_shipment(
        order=order, external_id="", carrier="ems", tracking_number="EE123456785CN",
        status="in_transit",
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        result = inbound(inbox, "tracking EE 123 456 785 CN has not moved for a week")
    assert list(result.conversation.order_links.values_list("order_id", flat=True)) == [order.pk]


# --- scope --------------------------------------------------------------------------------------


def test_agents_see_orders_of_their_stores_and_their_customers_only(shop, inbox, agent):
    mine = make_order(shop)
    elsewhere = StoreFactory()
    stranger = make_order(elsewhere, email="stranger@example.com")
    assert list(selectors.orders_visible_to(agent)) == [mine]
    with pytest.raises(NotFound):
        selectors.get_order(agent, stranger.pk)
    # A customer of this inbox who ordered from another store: visible too.
    ConversationFactory(inbox=inbox, customer=stranger.customer)
    assert set(selectors.orders_visible_to(agent)) == {mine, stranger}
    assert selectors.orders_visible_to(AgentFactory(is_active=False)).count() == 0


# --- refunds ------------------------------------------------------------------------------------


def test_agent_refunds_one_line_within_the_limit(shop, inbox, agent, heard,
                                                 django_capture_on_commit_callbacks):  # fmt: skip
    order = make_order(shop)
    conversation = ConversationFactory(inbox=inbox, customer=order.customer)
    mug = order.lines.get(sku="MUG-B")
    with django_capture_on_commit_callbacks(execute=True):
        refund = actions.refund_order(
            order=order,
            actor=agent,
            lines=[actions.RefundLine(line_id=mug.pk, quantity=1)],
            reason="chipped",
            conversation=conversation,
        )
    order.refresh_from_db()
    mug.refresh_from_db()
    assert (refund.status, refund.amount) == (RefundStatus.SUCCEEDED, 3000)
    assert (order.refunded, order.payment_status) == (3000, PaymentStatus.PARTIALLY_REFUNDED)
    assert mug.refunded_quantity == 1
    assert order_kinds(order)[-1] == "refunded"
    event = ConversationEvent.objects.get(conversation=conversation, data__action="refunded")
    assert event.actor == agent
    assert event.data["amount_display"] == "30.00 USD"
    updated = [e for e in heard if e.name == "order.updated"][-1]
    assert updated.payload["conversation_ids"] == [conversation.pk]
    assert updated.payload["action"] == "refunded"


def test_refunding_more_of_a_line_than_is_left_is_refused(shop, agent):
    order = make_order(shop)
    pot = order.lines.get(sku="POT-1")
    one = [actions.RefundLine(line_id=pot.pk, quantity=1)]
    actions.refund_order(order=order, actor=agent, lines=one)
    with pytest.raises(InvalidInput, match="0 left to refund"):
        actions.refund_order(order=order, actor=agent, lines=one)
    assert Refund.objects.filter(order=order).count() == 1


def test_above_the_limit_waits_for_a_lead(shop, agent, lead):
    order = make_order(shop)  # 110.00 USD, above the agent's 100.00
    refund = actions.refund_order(order=order, actor=agent, reason="never arrived")
    order.refresh_from_db()
    assert (refund.status, refund.amount, order.refunded) == (
        RefundStatus.PENDING_APPROVAL,
        11000,
        0,
    )
    with pytest.raises(Forbidden):
        actions.approve_refund(refund=refund, actor=agent)
    approved = actions.approve_refund(refund=refund, actor=lead)
    order.refresh_from_db()
    assert (approved.status, approved.decided_by) == (RefundStatus.SUCCEEDED, lead)
    assert (order.refunded, order.payment_status) == (11000, PaymentStatus.REFUNDED)
    assert order_kinds(order)[-2:] == ["refund_requested", "refunded"]
    with pytest.raises(Conflict):
        actions.approve_refund(refund=refund, actor=lead)


def test_the_limit_is_in_the_store_currency_per_settings(shop, agent, settings):
    settings.KEFU_REFUND_LIMITS = {"agent": "5000", "lead": None, "admin": None}
    yen = make_order(shop, currency="JPY", lines=[actions.LineData(title="Fan", quantity=1,
                                                                   unit_price=4800)])  # fmt: skip
    assert actions.refund_order(order=yen, actor=agent).status == RefundStatus.SUCCEEDED
    assert actions.refund_limit(agent, "KWD") == 5_000_000


def test_refunds_never_exceed_what_was_paid(shop, lead):
    order = make_order(shop)
    actions.refund_order(order=order, actor=lead, amount=10000)
    with pytest.raises(InvalidInput, match="exceeds the 1000 still refundable"):
        actions.refund_order(order=order, actor=lead, amount=1001)
    actions.refund_order(order=order, actor=lead)  # the rest
    order.refresh_from_db()
    assert order.refunded == order.total == 11000
    with pytest.raises(Conflict):
        actions.refund_order(order=order, actor=lead, amount=1)


def test_unpaid_orders_cannot_be_refunded(shop, lead):
    order = make_order(shop, payment_status=PaymentStatus.PENDING)
    with pytest.raises(Conflict):
        actions.refund_order(order=order, actor=lead)


class Refusing:
    @classmethod
    def for_store(cls, store):
        return cls()

    def refund(self, *, order, refund):
        raise PlatformError("card issuer declined the refund")

    def cancel(self, *, order, reason):
        raise PlatformError("order already cancelled on the platform")


def test_a_platform_refusal_writes_nothing_but_a_trace(lead, inbox, monkeypatch):
    store = StoreFactory(platform="ebay")
    monkeypatch.setitem(platforms._factories, "ebay", Refusing)
    order = make_order(store)
    conversation = ConversationFactory(inbox=inbox, customer=order.customer)
    with pytest.raises(Conflict, match="card issuer declined"):
        actions.refund_order(order=order, actor=lead, conversation=conversation)
    with pytest.raises(Conflict, match="already cancelled on the platform"):
        actions.cancel_order(order=order, actor=lead)
    order.refresh_from_db()
    assert (order.refunded, order.status) == (0, OrderStatus.OPEN)
    assert not Refund.objects.exists()
    assert order_kinds(order)[-2:] == ["refund_failed", "cancel_failed"]
    assert conversation_actions(conversation) == []


# --- cancel, returns, disputes ------------------------------------------------------------------


def test_cancel_once(shop, agent):
    order = make_order(shop)
    actions.cancel_order(order=order, actor=agent, reason="customer asked")
    with pytest.raises(Conflict, match="already cancelled"):
        actions.cancel_order(order=order, actor=agent)
    shipped = make_order(shop, fulfillment_status="fulfilled")
    with pytest.raises(Conflict, match="create a return"):
        actions.cancel_order(order=shipped, actor=agent)


def test_return_walks_its_state_machine(shop, agent):
    order = make_order(shop, fulfillment_status="fulfilled")
    mug = order.lines.get(sku="MUG-B")
    rma = actions.create_return(
        order=order, actor=agent, lines=[actions.RefundLine(line_id=mug.pk, quantity=2)],
        reason="wrong colour", condition="unopened",
    )  # fmt: skip
    with pytest.raises(Conflict):
        actions.advance_return(rma=rma, actor=agent, status=ReturnStatus.RECEIVED)
    actions.advance_return(rma=rma, actor=agent, status=ReturnStatus.APPROVED)
    with pytest.raises(InvalidInput):
        actions.advance_return(rma=rma, actor=agent, status=ReturnStatus.LABEL_SENT,
                               label_url="http://insecure.example/label")  # fmt: skip
    for status in (ReturnStatus.LABEL_SENT, ReturnStatus.RECEIVED, ReturnStatus.EXCHANGED,
                   ReturnStatus.CLOSED):  # fmt: skip
        rma = actions.advance_return(
            rma=rma, actor=agent, status=status, label_url="https://labels.example/1.pdf"
        )
    assert rma.status == ReturnStatus.CLOSED
    with pytest.raises(InvalidInput):
        actions.create_return(order=order, actor=agent, lines=[], reason="x")


def test_dispute_first_contact_due_in_24_hours_and_moves_forward_only(shop, inbox, agent):
    order = make_order(shop)
    conversation = ConversationFactory(inbox=inbox, customer=order.customer)
    opened = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    dispute = actions.open_dispute(kind="claim", actor=agent, summary="arrived broken",
                                   order=order, conversation=conversation, at=opened)  # fmt: skip
    assert dispute.first_contact_due_at == opened + timedelta(hours=24)
    with pytest.raises(Conflict):
        actions.advance_dispute(dispute=dispute, actor=agent, status=DisputeStatus.RESOLVED)
    dispute = actions.record_first_contact(dispute=dispute, actor=agent)
    assert dispute.first_contact_at is not None
    actions.advance_dispute(dispute=dispute, actor=agent,
                            status=DisputeStatus.RESPONSIBILITY_DECIDED)  # fmt: skip
    with pytest.raises(InvalidInput):
        actions.advance_dispute(dispute=dispute, actor=agent, status="resolved", resolution="hm")
    dispute = actions.advance_dispute(dispute=dispute, actor=agent, status="resolved",
                                      resolution="replace")  # fmt: skip
    assert dispute.resolution == "replace"
    assert conversation_actions(conversation) == ["dispute_opened"] + ["dispute_status"] * 3


def test_a_raw_only_snapshot_is_not_news(shop, heard, django_capture_on_commit_callbacks):
    lines = [actions.LineData(title="Mug", quantity=1, unit_price=900, external_id="l9")]
    order = make_order(shop, external_id="gid-9", number="#9", lines=lines)
    with django_capture_on_commit_callbacks(execute=True):
        make_order(shop, external_id="gid-9", number="#9", lines=lines, raw={"v": 2})
    assert order_kinds(order) == ["created"]
    assert [e for e in heard if e.name == "order.updated"] == []


def test_exceptions_reach_the_linked_conversations_for_rules(
    shop, inbox, heard, django_capture_on_commit_callbacks
):
    order = make_order(shop, external_id="gid-x", number="#77")
    conversation = ConversationFactory(inbox=inbox, customer=order.customer)
    actions.link_order(conversation=conversation, order=order, actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        make_order(shop, external_id="gid-x", number="#77", payment_status="failed")
        actions.upsert_shipment(order=order, external_id="s", carrier="dhl",
                                tracking_number="3318810025", status="in_transit")  # fmt: skip
        actions.upsert_shipment(order=order, external_id="s", carrier="dhl",
                                tracking_number="3318810025", status="exception")  # fmt: skip
    assert conversation_actions(conversation) == ["linked", "payment_failed", "shipment_status"]
    exceptions = [(e.name, e.payload["conversation_ids"]) for e in heard
                  if e.payload.get("action") in ("payment_failed", "shipment_status")]  # fmt: skip
    assert exceptions == [
        ("order.exception", [conversation.pk]),
        ("shipment.updated", [conversation.pk]),
        ("shipment.exception", [conversation.pk]),
    ]


def test_stalled_parcels_are_flagged_once(shop, inbox, heard, django_capture_on_commit_callbacks):
    order = make_order(shop)
    conversation = ConversationFactory(inbox=inbox, customer=order.customer)
    actions.link_order(conversation=conversation, order=order, actor=None)
    parcel = {"external_id": "s", "carrier": "ems", "tracking_number": "EE123456785CN"}
    shipment = actions.upsert_shipment(order=order, status="in_transit", **parcel)
    later = shipment.moved_at + timedelta(days=6)
    assert actions.flag_stalled_shipments(now=later, days=7) == []
    with django_capture_on_commit_callbacks(execute=True):
        assert actions.flag_stalled_shipments(now=later, days=5) == [shipment.pk]
    assert actions.flag_stalled_shipments(now=later, days=5) == []  # once
    assert conversation_actions(conversation)[-1] == "shipment_stalled"
    assert [e.name for e in heard if e.payload.get("action") == "shipment_stalled"] == [
        "shipment.exception"
    ]
    events = [{"at": "2026-11-20T00:00:00Z", "status": "in_transit"}]
    moved = actions.upsert_shipment(order=order, status="in_transit", events=events, **parcel)
    assert moved.stalled_at is None
