"""The commerce panel beside a conversation: what it shows, and its confirmed actions."""

from __future__ import annotations

import pytest
from django.urls import reverse

from kefu.commerce import actions
from kefu.commerce.models import OrderStatus, Refund, RefundStatus, ReturnStatus
from kefu.conversations.models import ConversationEvent
from tests.commerce.conftest import make_order
from tests.factories import AgentFactory, ConversationFactory, StoreFactory


@pytest.fixture
def scene(shop, inbox, agent):
    order = make_order(shop, number="#1001")
    actions.upsert_shipment(
        order=order, external_id="f1", carrier="ups", tracking_number="1Z999AA10123456784",
        status="in_transit",
        events=[{"at": "2026-11-03T10:00:00Z", "status": "in_transit", "location": "Louisville",
                 "description": "Departed facility"}],
    )  # fmt: skip
    conversation = ConversationFactory(inbox=inbox, customer=order.customer)
    actions.link_order(conversation=conversation, order=order, actor=None)
    return order, conversation


def panel(client, order, conversation):
    url = reverse("commerce:customer_panel", kwargs={"customer_id": order.customer_id})
    return client.get(url, {"conversation": conversation.pk})


def test_the_panel_shows_orders_lines_totals_and_tracking(client, agent, scene):
    order, conversation = scene
    client.force_login(agent)
    answer = panel(client, order, conversation)
    html = answer.content.decode()
    assert answer.status_code == 200
    for shown in ("#1001", "Blue mug", "30.00 USD", "110.00 USD", "Paid", "Unfulfilled",
                  "1Z999AA10123456784", "Louisville", "Departed facility", "mentioned here",
                  "Above 100.00 USD a lead must approve"):  # fmt: skip
        assert shown in html, shown
    assert "<script" not in html and "style=" not in html  # strict CSP


def test_zero_and_three_decimal_currencies_are_formatted(client, agent, shop, inbox):
    order = make_order(shop, currency="KWD", lines=[
        actions.LineData(title="Dates", quantity=1, unit_price=12345)])  # fmt: skip
    make_order(shop, currency="JPY", lines=[
        actions.LineData(title="Fan", quantity=3, unit_price=1500)])  # fmt: skip
    conversation = ConversationFactory(inbox=inbox, customer=order.customer)
    client.force_login(agent)
    html = panel(client, order, conversation).content.decode()
    assert "12.345 KWD" in html and "4,500 JPY" in html


def test_other_stores_orders_stay_hidden(client, agent, inbox):
    foreign = make_order(StoreFactory(), email="someone@example.com")
    client.force_login(agent)
    url = reverse("commerce:customer_panel", kwargs={"customer_id": foreign.customer_id})
    assert "No orders" in client.get(url).content.decode()
    answer = client.post(reverse("commerce:cancel", args=[foreign.pk]), {"confirm": "yes"})
    assert answer.status_code == 404
    foreign.refresh_from_db()
    assert foreign.status == OrderStatus.OPEN


def test_refund_one_line_needs_confirmation_then_shows_on_both_timelines(client, agent, scene):
    order, conversation = scene
    client.force_login(agent)
    mug = order.lines.get(sku="MUG-B")
    url = reverse("commerce:refund", args=[order.pk])
    form = {"conversation": conversation.pk, f"line-{mug.pk}": "1", "reason": "chipped"}
    answer = client.post(url, form, follow=True)
    assert "I confirm" in answer.content.decode()
    assert not Refund.objects.exists()
    answer = client.post(url, {**form, "confirm": "yes"})
    assert answer.status_code == 302
    assert answer.url == reverse("workspace:conversation", args=[conversation.pk])
    refund = Refund.objects.get()
    assert (refund.amount, refund.status, refund.created_by) == (
        3000,
        RefundStatus.SUCCEEDED,
        agent,
    )
    event = ConversationEvent.objects.filter(conversation=conversation).latest("id")
    assert (event.data["action"], event.actor) == ("refunded", agent)
    html = panel(client, order, conversation).content.decode()
    assert "1 refunded" in html and "refunded 30.00 USD" in html


def test_above_the_limit_the_lead_approves_from_the_panel(client, agent, lead, scene):
    order, conversation = scene
    client.force_login(agent)
    client.post(reverse("commerce:refund", args=[order.pk]),
                {"conversation": conversation.pk, "full": "yes", "confirm": "yes"})  # fmt: skip
    refund = Refund.objects.get()
    assert refund.status == RefundStatus.PENDING_APPROVAL
    assert "Approve" not in panel(client, order, conversation).content.decode()
    client.force_login(lead)
    assert "Approve" in panel(client, order, conversation).content.decode()
    decide = reverse("commerce:decide_refund", args=[order.pk, refund.pk])
    client.post(decide, {"decision": "approve", "confirm": "yes", "conversation": conversation.pk})
    refund.refresh_from_db()
    assert (refund.status, refund.decided_by) == (RefundStatus.SUCCEEDED, lead)


def test_errors_are_shown_and_nothing_is_half_done(client, agent, scene):
    order, conversation = scene
    client.force_login(agent)
    pot = order.lines.get(sku="POT-1")
    answer = client.post(
        reverse("commerce:refund", args=[order.pk]),
        {"conversation": conversation.pk, f"line-{pot.pk}": "5", "confirm": "yes"},
        follow=True,
    )
    assert "1 left to refund, asked 5" in answer.content.decode()
    assert not Refund.objects.exists()


def test_cancel_return_and_dispute_from_the_panel(client, agent, scene):
    order, conversation = scene
    client.force_login(agent)
    mug = order.lines.get(sku="MUG-B")
    base = {"conversation": conversation.pk, "confirm": "yes"}
    client.post(reverse("commerce:create_return", args=[order.pk]),
                {**base, f"line-{mug.pk}": "1", "reason": "wrong colour"})  # fmt: skip
    rma = order.returns.get()
    client.post(reverse("commerce:advance_return", args=[order.pk, rma.pk]),
                {**base, "status": "approved"})  # fmt: skip
    rma.refresh_from_db()
    assert rma.status == ReturnStatus.APPROVED
    client.post(reverse("commerce:open_dispute", args=[order.pk]),
                {**base, "kind": "complaint", "summary": "slow"})  # fmt: skip
    assert order.disputes.get().kind == "complaint"
    client.post(reverse("commerce:cancel", args=[order.pk]), base)
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    actions_seen = [
        e.data["action"]
        for e in ConversationEvent.objects.filter(conversation=conversation).order_by("id")
    ]
    assert actions_seen == [
        "linked",
        "return_created",
        "return_status",
        "dispute_opened",
        "cancelled",
    ]


def test_signed_out_people_sign_in_and_outsiders_see_nothing(client, scene):
    order, conversation = scene
    assert panel(client, order, conversation).status_code == 302
    client.force_login(AgentFactory())  # in no inbox
    assert panel(client, order, conversation).status_code == 404  # the conversation is hidden
    url = reverse("commerce:customer_panel", kwargs={"customer_id": order.customer_id})
    assert "No orders" in client.get(url).content.decode()


def test_many_orders_render_compact_beyond_the_first_few(client, agent, shop, inbox):
    orders = [make_order(shop) for _ in range(30)]
    conversation = ConversationFactory(inbox=inbox, customer=orders[0].customer)
    client.force_login(agent)
    html = panel(client, orders[0], conversation).content.decode()
    assert html.count('id="order-') == 25
    assert "The 25 most recent orders." in html
    assert html.count("cm-compact") == 22  # three in full
    oldest_shown = orders[5]
    url = reverse("commerce:customer_panel", kwargs={"customer_id": oldest_shown.customer_id})
    expanded = client.get(url, {"conversation": conversation.pk, "order": oldest_shown.pk})
    assert expanded.content.decode().count("cm-compact") == 21


def test_change_the_shipping_address_from_the_panel(client, agent, scene):
    order, conversation = scene
    client.force_login(agent)
    assert "Change shipping address" in panel(client, order, conversation).content.decode()
    url = reverse("commerce:change_address", args=[order.pk])
    form = {"conversation": conversation.pk, "confirm": "yes", "address1": "1 New Road",
            "city": "Leeds", "zip": "LS1 1AA", "country_code": "gb"}  # fmt: skip
    missing_city = client.post(url, {**form, "city": ""}, follow=True)
    assert "the address needs city" in missing_city.content.decode()
    client.post(url, form)
    order.refresh_from_db()
    assert (order.shipping_address["city"], order.shipping_address["country_code"]) == (
        "Leeds",
        "GB",
    )
    event = ConversationEvent.objects.filter(conversation=conversation).latest("id")
    assert (event.data["action"], event.actor) == ("address_changed", agent)
