"""Shopify: webhooks signed as Shopify signs them, and the Admin GraphQL client against a local
server speaking the documented shapes (refundCreate, orderCancel, order transactions)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from kefu.commerce import actions, webhooks
from kefu.commerce.models import (
    Order,
    OrderStatus,
    PaymentStatus,
    Refund,
    RefundStatus,
    Shipment,
    Store,
    WebhookDelivery,
)
from kefu.core.errors import Conflict

SECRET = "shpss_test_secret"

ORDER = {
    "id": 450789469,
    "name": "#1001",
    "order_number": 1001,
    "email": "bob.norman@example.com",
    "phone": None,
    "currency": "USD",
    "created_at": "2026-11-01T12:00:00-05:00",
    "subtotal_price": "110.00",
    "total_tax": "0.00",
    "total_price": "115.00",
    "total_shipping_price_set": {"shop_money": {"amount": "5.00", "currency_code": "USD"}},
    "financial_status": "paid",
    "fulfillment_status": None,
    "cancelled_at": None,
    "closed_at": None,
    "shipping_address": {"address1": "Chestnut Street 92", "city": "Louisville", "zip": "40202"},
    "line_items": [
        {"id": 466157049, "sku": "MUG-B", "title": "Blue mug", "quantity": 2, "price": "30.00"},
        {"id": 518995019, "sku": "POT-1", "title": "Teapot", "quantity": 1, "price": "50.00"},
    ],
    "refunds": [],
}


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@pytest.fixture
def store(db):
    return Store.objects.create(
        name="Bob's", platform="shopify", currency="USD", platform_domain="bob.myshopify.com",
        webhook_secret=SECRET,
    )  # fmt: skip


def deliver(client, store, topic, payload, *, event_id, signature=None, process=True):
    """POST a signed delivery; then (``process``) run the webhook drain as a worker would."""
    body = json.dumps(payload).encode()
    answer = client.post(
        f"/commerce/webhooks/shopify/{store.pk}",
        body,
        content_type="application/json",
        headers={
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": signature if signature is not None else sign(body),
            "X-Shopify-Event-Id": event_id,
            "X-Shopify-Shop-Domain": "bob.myshopify.com",
        },
    )
    if process:
        webhooks.drain()
    return answer


def test_the_secret_is_encrypted_at_rest(store):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT webhook_secret FROM commerce_store WHERE id = %s", [store.pk])
        stored = cursor.fetchone()[0]
    assert SECRET not in stored
    assert Store.objects.get(pk=store.pk).webhook_secret == SECRET


def test_order_create_then_update_then_duplicate(client, store):
    assert deliver(client, store, "orders/create", ORDER, event_id="e1").status_code == 200
    order = Order.objects.get(store=store, external_id="450789469")
    assert (order.number, order.total, order.shipping, order.currency) == (
        "#1001",
        11500,
        500,
        "USD",
    )
    assert order.payment_status == PaymentStatus.PAID
    assert [(line.sku, line.quantity, line.unit_price) for line in order.lines.order_by("id")] == [
        ("MUG-B", 2, 3000), ("POT-1", 1, 5000),
    ]  # fmt: skip
    assert order.customer is not None
    cancelled = {**ORDER, "cancelled_at": "2026-11-02T09:00:00-05:00"}
    assert deliver(client, store, "orders/updated", cancelled, event_id="e2").status_code == 200
    answer = deliver(client, store, "orders/updated", ORDER, event_id="e2")  # Shopify retried
    assert answer.json() == {"status": "duplicate"}
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert WebhookDelivery.objects.filter(store=store).count() == 2


@pytest.mark.parametrize(
    "signature", ["", "not-base64", sign(b"another body"), sign(b"{}", secret="wrong")]
)
def test_bad_signatures_are_refused_and_change_nothing(client, store, signature):
    answer = deliver(client, store, "orders/create", ORDER, event_id="e1", signature=signature)
    assert answer.status_code == 401
    assert not Order.objects.exists()
    assert not WebhookDelivery.objects.exists()


def test_a_store_without_a_secret_accepts_nothing(client, store):
    store.webhook_secret = ""
    store.save()
    assert deliver(client, store, "orders/create", ORDER, event_id="e1").status_code == 401


def test_fulfillment_and_refund_webhooks(client, store):
    deliver(client, store, "orders/create", ORDER, event_id="e1")
    fulfillment = {
        "id": 255858046, "order_id": 450789469, "status": "success",
        "tracking_company": "UPS", "tracking_number": "1Z999AA10123456784",
        "tracking_numbers": ["1Z999AA10123456784"], "shipment_status": "in_transit",
    }  # fmt: skip
    assert (
        deliver(client, store, "fulfillments/create", fulfillment, event_id="f1").status_code == 200
    )
    shipment = Shipment.objects.get()
    assert (shipment.carrier, shipment.tracking_number, shipment.status) == (
        "UPS", "1Z999AA10123456784", "in_transit",
    )  # fmt: skip
    refund = {
        "id": 509562969, "order_id": 450789469,
        "refund_line_items": [{"line_item_id": 466157049, "quantity": 1}],
        "transactions": [{"kind": "refund", "status": "success", "amount": "30.00"}],
    }  # fmt: skip
    assert deliver(client, store, "refunds/create", refund, event_id="r1").status_code == 200
    assert deliver(client, store, "refunds/create", refund, event_id="r1-again").status_code == 200
    order = Order.objects.get()
    assert (order.refunded, order.payment_status) == (3000, PaymentStatus.PARTIALLY_REFUNDED)
    assert order.lines.get(sku="MUG-B").refunded_quantity == 1
    assert Refund.objects.get().external_id == "gid://shopify/Refund/509562969"


def test_a_fulfillment_before_its_order_waits_and_is_retried(client, store):
    fulfillment = {"id": 1, "order_id": 450789469, "tracking_number": "1Z999AA10123456784"}
    answer = deliver(client, store, "fulfillments/create", fulfillment, event_id="f")
    assert answer.json() == {"status": "accepted"}
    waiting = WebhookDelivery.objects.get()
    assert (waiting.processed_at, waiting.attempts) == (None, 1)
    assert waiting.error == "order 450789469 not synced yet"
    assert waiting.next_attempt_at is not None
    deliver(client, store, "orders/create", ORDER, event_id="e1")
    assert not Shipment.objects.exists()  # its retry is not due yet
    WebhookDelivery.objects.filter(pk=waiting.pk).update(next_attempt_at=None)
    webhooks.drain()
    waiting.refresh_from_db()
    assert waiting.processed_at is not None and waiting.error == ""
    assert Shipment.objects.get().tracking_number == "1Z999AA10123456784"


def test_privacy_topics(client, store):
    deliver(client, store, "orders/create", ORDER, event_id="e1")
    request = {
        "shop_domain": "bob.myshopify.com",
        "customer": {"id": 1},
        "orders_requested": [450789469],
    }
    assert (
        deliver(client, store, "customers/data_request", request, event_id="p1").status_code == 200
    )
    redact = {
        "shop_domain": "bob.myshopify.com",
        "customer": {"id": 1},
        "orders_to_redact": [450789469],
    }
    assert deliver(client, store, "customers/redact", redact, event_id="p2").status_code == 200
    order = Order.objects.get()
    assert (order.email, order.shipping_address, order.raw, order.customer) == ("", {}, {}, None)
    assert order.total == 11500  # the accounts keep their amounts
    assert deliver(client, store, "shop/redact", {"shop_id": 1}, event_id="p3").status_code == 200


# --- the GraphQL client against a local Shopify --------------------------------------------------


def graphql_order(number, updated_status="PAID"):
    money = lambda amount: {"shopMoney": {"amount": amount, "currencyCode": "JPY"}}  # noqa: E731
    return {
        "id": f"gid://shopify/Order/{number}", "name": f"#{number}", "email": "kenji@example.jp",
        "phone": None, "currencyCode": "JPY", "createdAt": "2026-11-01T03:00:00Z",
        "updatedAt": "2026-11-05T03:00:00Z", "cancelledAt": None, "closedAt": None,
        "displayFinancialStatus": updated_status, "displayFulfillmentStatus": "FULFILLED",
        "subtotalPriceSet": money("3000.0"), "totalShippingPriceSet": money("500.0"),
        "totalTaxSet": money("0.0"), "totalPriceSet": money("3500.0"),
        "totalRefundedSet": money("0.0"),
        "shippingAddress": {"firstName": "Kenji", "lastName": "Sato", "address1": "1-1",
                            "address2": None, "city": "Tokyo", "province": "Tokyo",
                            "zip": "100-0001", "countryCodeV2": "JP", "phone": None},
        "lineItems": {"nodes": [{"id": f"gid://shopify/LineItem/{number}1", "sku": "TEA",
                                 "title": "Sencha", "quantity": 2,
                                 "originalUnitPriceSet": money("1500.0")}]},
    }  # fmt: skip


CHANGED_PAGES = {
    None: {"pageInfo": {"hasNextPage": True, "endCursor": "c1"},
           "nodes": [graphql_order(5001)]},
    "c1": {"pageInfo": {"hasNextPage": False, "endCursor": "c2"},
           "nodes": [graphql_order(5002, "PARTIALLY_REFUNDED")]},
}  # fmt: skip


class FakeShopify(BaseHTTPRequestHandler):
    """Answers like the Admin GraphQL API; ``behaviour`` picks the scenario."""

    behaviour = "ok"
    requests: list[dict] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body["token"] = self.headers.get("X-Shopify-Access-Token")
        FakeShopify.requests.append(body)
        if self.behaviour == "down":
            return self._answer(503, {"errors": "Service unavailable"})
        query = body["query"]
        if "ChangedOrders" in query:
            data = {"orders": CHANGED_PAGES[body["variables"]["after"]]}
        elif "OrderTransactions" in query:
            data = {"order": {"id": body["variables"]["id"], "transactions": [
                {"id": "gid://shopify/OrderTransaction/389404469", "kind": "SALE",
                 "status": "SUCCESS", "gateway": "bogus"},
            ]}}  # fmt: skip
        elif "refundCreate" in query:
            if self.behaviour == "refuse":
                data = {"refundCreate": {"refund": None, "userErrors": [
                    {"field": ["transactions", "0", "amount"],
                     "message": "Amount cannot be greater than the refundable amount"},
                ]}}  # fmt: skip
            else:
                data = {"refundCreate": {"refund": {
                    "id": "gid://shopify/Refund/929361464",
                    "totalRefundedSet": {"shopMoney": {"amount": "30.0", "currencyCode": "USD"}},
                }, "userErrors": []}}  # fmt: skip
        elif "orderUpdate" in query:
            data = {"orderUpdate": {"order": {"id": body["variables"]["input"]["id"]},
                                    "userErrors": []}}  # fmt: skip
        elif "orderCancel" in query:
            if self.behaviour == "refuse":
                data = {"orderCancel": {"job": None, "orderCancelUserErrors": [
                    {"field": ["orderId"], "message": "Order has already been cancelled",
                     "code": "INVALID"},
                ]}}  # fmt: skip
            else:
                data = {"orderCancel": {"job": {"id": "gid://shopify/Job/1", "done": False},
                                        "orderCancelUserErrors": []}}  # fmt: skip
        else:
            return self._answer(200, {"errors": [{"message": "unknown query"}]})
        self._answer(200, {"data": data})

    def _answer(self, status, body):
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def fake_shopify(settings):
    settings.KEFU_HTTP_ALLOW_PRIVATE = ["127.0.0.1/32"]
    server = HTTPServer(("127.0.0.1", 0), FakeShopify)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeShopify.behaviour, FakeShopify.requests = "ok", []
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def connected(client, store, fake_shopify, monkeypatch):
    from kefu.core import http

    monkeypatch.setattr(http, "_sleep", lambda seconds: None)
    store.access_token = "shpat_test"
    store.api_url = f"http://127.0.0.1:{fake_shopify.server_port}/admin/api/2025-01/graphql.json"
    store.save()
    deliver(client, store, "orders/create", ORDER, event_id="e1")
    return Order.objects.get()


def test_refund_one_line_on_shopify(connected, django_user_model):
    lead = django_user_model.objects.create(username="lead", role="lead")
    mug = connected.lines.get(sku="MUG-B")
    refund = actions.refund_order(
        order=connected, actor=lead, lines=[actions.RefundLine(line_id=mug.pk, quantity=1)]
    )
    assert (refund.status, refund.external_id) == (
        RefundStatus.SUCCEEDED,
        "gid://shopify/Refund/929361464",
    )
    sent = FakeShopify.requests[-1]
    assert sent["token"] == "shpat_test"
    assert sent["variables"]["input"] == {
        "orderId": "gid://shopify/Order/450789469",
        "note": "",
        "notify": True,
        "refundLineItems": [
            {"lineItemId": "gid://shopify/LineItem/466157049", "quantity": 1,
             "restockType": "NO_RESTOCK"}
        ],
        "transactions": [{
            "orderId": "gid://shopify/Order/450789469",
            "parentId": "gid://shopify/OrderTransaction/389404469",
            "gateway": "bogus", "kind": "REFUND", "amount": "30.00",
        }],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [("refuse", "greater than the refundable amount"), ("down", "HTTP 503")],
)
def test_refused_or_unreachable_refund_changes_nothing(
    connected, django_user_model, behaviour, message
):
    lead = django_user_model.objects.create(username="lead", role="lead")
    FakeShopify.behaviour = behaviour
    with pytest.raises(Conflict, match=message):
        actions.refund_order(order=connected, actor=lead, amount=1000)
    connected.refresh_from_db()
    assert (connected.refunded, Refund.objects.count()) == (0, 0)
    assert connected.events.order_by("-id").first().kind == "refund_failed"


def test_cancel_on_shopify_and_already_cancelled(connected, django_user_model):
    lead = django_user_model.objects.create(username="lead", role="lead")
    FakeShopify.behaviour = "refuse"
    with pytest.raises(Conflict, match="already been cancelled"):
        actions.cancel_order(order=connected, actor=lead)
    FakeShopify.behaviour = "ok"
    actions.cancel_order(order=connected, actor=lead, reason="customer asked")
    connected.refresh_from_db()
    assert connected.status == OrderStatus.CANCELLED
    variables = FakeShopify.requests[-1]["variables"]
    assert (variables["orderId"], variables["refund"], variables["staffNote"]) == (
        "gid://shopify/Order/450789469", False, "customer asked",
    )  # fmt: skip


def test_change_the_shipping_address_on_shopify(connected, django_user_model):
    agent = django_user_model.objects.create(username="a1", role="agent")
    address = {"address1": "1 New Road", "city": "Leeds", "country_code": "GB", "zip": "LS1"}
    FakeShopify.behaviour = "ok"
    actions.update_shipping_address(order=connected, actor=agent, address=address)
    sent = FakeShopify.requests[-1]
    assert "orderUpdate" in sent["query"]
    assert sent["variables"]["input"] == {
        "id": "gid://shopify/Order/450789469",
        "shippingAddress": {"address1": "1 New Road", "city": "Leeds", "countryCode": "GB",
                            "zip": "LS1"},
    }  # fmt: skip
    connected.refresh_from_db()
    assert connected.shipping_address["city"] == "Leeds"


def test_reconciliation_reads_every_changed_page_and_remembers_where_it_got(connected):
    from datetime import UTC, datetime

    from kefu.commerce.platforms.shopify.sync import reconcile

    store = connected.store
    now = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    assert reconcile(store, now=now) == 2
    orders = {o.number: o for o in Order.objects.filter(store=store, currency="JPY")}
    assert set(orders) == {"#5001", "#5002"}
    tea = orders["#5001"]
    assert (tea.total, tea.shipping, tea.external_id) == (3500, 500, "5001")
    assert [(line.sku, line.unit_price, line.external_id) for line in tea.lines.all()] == [
        ("TEA", 1500, "50011")
    ]
    assert orders["#5002"].payment_status == PaymentStatus.PARTIALLY_REFUNDED
    store.refresh_from_db()
    assert store.synced_at == now
    reconcile(store, now=now)
    assert (
        FakeShopify.requests[-2]["variables"]["query"] == "updated_at:>='2026-11-23T06:00:00+00:00'"
    )
    assert Order.objects.filter(store=store, currency="JPY").count() == 2


def test_reconciliation_failure_keeps_the_sync_point(connected):
    from kefu.commerce.platforms import PlatformError
    from kefu.commerce.platforms.shopify.sync import reconcile

    FakeShopify.behaviour = "down"
    with pytest.raises(PlatformError):
        reconcile(connected.store)
    connected.store.refresh_from_db()
    assert connected.store.synced_at is None


def test_the_reconcile_task(connected):
    from kefu.commerce.tasks import reconcile_store

    assert reconcile_store.call(connected.store.pk) == 2
    FakeShopify.behaviour = "down"
    assert reconcile_store.call(connected.store.pk) == 0  # logged, retried next time
    assert reconcile_store.call(10**6) == 0
