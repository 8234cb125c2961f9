"""WooCommerce: webhooks signed as WooCommerce signs them, and the REST v3 client against a local
server answering the documented shapes (refunds, order update)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from kefu.commerce import actions, webhooks
from kefu.commerce.models import Order, OrderStatus, PaymentStatus, Refund, Store
from kefu.core.errors import Conflict

SECRET = "wc-webhook-secret"

ORDER = {
    "id": 727,
    "number": "727",
    "status": "processing",
    "currency": "EUR",
    "date_created_gmt": "2026-11-01T12:00:00",
    "total": "115.00",
    "total_tax": "0.00",
    "shipping_total": "5.00",
    "billing": {"email": "john.doe@example.com", "phone": "(555) 555-5555"},
    "shipping": {"address_1": "969 Market", "city": "San Francisco"},
    "line_items": [
        {"id": 315, "name": "Woo Single #1", "sku": "", "quantity": 2, "subtotal": "60.00",
         "price": 30.0},
        {"id": 316, "name": "Ship Your Idea", "sku": "IDEA", "quantity": 1, "subtotal": "50.00",
         "price": 50.0},
    ],
    "refunds": [],
}  # fmt: skip


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@pytest.fixture
def store(db):
    return Store.objects.create(
        name="Woo", platform="woocommerce", currency="EUR", webhook_secret=SECRET,
        platform_domain="shop.example",
    )  # fmt: skip


def deliver(client, store, topic, payload, *, delivery, signature=None):
    """POST a signed delivery, then run the webhook drain as a worker would."""
    body = json.dumps(payload).encode()
    answer = client.post(
        f"/commerce/webhooks/woocommerce/{store.pk}", body, content_type="application/json",
        headers={"X-WC-Webhook-Topic": topic, "X-WC-Webhook-Delivery-ID": delivery,
                 "X-WC-Webhook-Signature": signature if signature is not None else sign(body)},
    )  # fmt: skip
    webhooks.drain()
    return answer


def test_order_webhooks_sync_and_deduplicate(client, store):
    assert deliver(client, store, "order.created", ORDER, delivery="d1").status_code == 200
    order = Order.objects.get()
    assert (order.number, order.currency, order.total, order.shipping) == (
        "#727",
        "EUR",
        11500,
        500,
    )
    assert [(line.title, line.unit_price) for line in order.lines.order_by("id")] == [
        ("Woo Single #1", 3000), ("Ship Your Idea", 5000),
    ]  # fmt: skip
    assert order.payment_status == PaymentStatus.PAID
    refunded = {**ORDER, "refunds": [{"id": 9, "reason": "", "total": "-30.00"}]}
    assert deliver(client, store, "order.updated", refunded, delivery="d2").status_code == 200
    assert deliver(client, store, "order.updated", ORDER, delivery="d2").json() == {
        "status": "duplicate"
    }
    order.refresh_from_db()
    assert (order.refunded, order.payment_status) == (3000, PaymentStatus.PARTIALLY_REFUNDED)


def test_bad_signature_and_the_creation_ping(client, store):
    bad = deliver(client, store, "order.created", ORDER, delivery="d1", signature=sign(b"x"))
    assert bad.status_code == 401
    assert not Order.objects.exists()
    ping = client.post(f"/commerce/webhooks/woocommerce/{store.pk}", b"webhook_id=12",
                       content_type="application/x-www-form-urlencoded")  # fmt: skip
    assert ping.json() == {"status": "pong"}


CHANGED_PAGES = [
    [{**ORDER, "id": 801, "number": "801", "status": "completed",
      "date_modified_gmt": "2026-11-20T08:00:00"}],
    [{**ORDER, "id": 802, "number": "802", "status": "refunded",
      "refunds": [{"id": 3, "total": "-115.00"}]}],
]  # fmt: skip


class FakeWoo(BaseHTTPRequestHandler):
    behaviour = "ok"
    requests: list[dict] = []

    def log_message(self, *args):
        pass

    def _body(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        FakeWoo.requests.append({"method": self.command, "path": self.path,
                                 "auth": self.headers.get("Authorization"),
                                 "body": json.loads(raw or b"{}")})  # fmt: skip

    def do_POST(self):
        self._body()
        if self.behaviour == "refuse":
            return self._answer(
                500,
                {
                    "code": "woocommerce_rest_cannot_create_order_refund",
                    "message": "Refund amount must be greater than zero.",
                },
            )
        self._answer(201, {"id": 726, "amount": FakeWoo.requests[-1]["body"]["amount"]})

    def do_PUT(self):
        self._body()
        self._answer(200, {"id": 727, "status": "cancelled"})

    def do_GET(self):
        """``GET /wp-json/wc/v3/orders``: the orders list, paged, ``X-WP-TotalPages``."""
        FakeWoo.requests.append({"method": "GET", "path": self.path,
                                 "auth": self.headers.get("Authorization")})  # fmt: skip
        if self.behaviour == "down":
            return self._answer(503, {"code": "unavailable", "message": "Down for maintenance"})
        query = parse_qs(urlsplit(self.path).query)
        page = int(query["page"][0])
        self._answer(200, CHANGED_PAGES[page - 1], pages=len(CHANGED_PAGES))

    def _answer(self, status, body, pages=None):
        raw = json.dumps(body).encode()
        self.send_response(status)
        if pages is not None:
            self.send_header("X-WP-TotalPages", str(pages))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def connected(client, store, settings, monkeypatch):
    from kefu.core import http

    settings.KEFU_HTTP_ALLOW_PRIVATE = ["127.0.0.1/32"]
    monkeypatch.setattr(http, "_sleep", lambda seconds: None)
    server = HTTPServer(("127.0.0.1", 0), FakeWoo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakeWoo.behaviour, FakeWoo.requests = "ok", []
    store.access_token = "ck_test:cs_test"
    store.api_url = f"http://127.0.0.1:{server.server_port}"
    store.save()
    deliver(client, store, "order.created", ORDER, delivery="d1")
    yield Order.objects.get()
    server.shutdown()
    server.server_close()


def test_refund_a_line_and_cancel_on_woocommerce(connected, django_user_model):
    lead = django_user_model.objects.create(username="lead", role="lead")
    line = connected.lines.get(external_id="315")
    one = [actions.RefundLine(line_id=line.pk, quantity=1)]
    refund = actions.refund_order(order=connected, actor=lead, reason="broken", lines=one)
    assert refund.external_id == "726"
    sent = FakeWoo.requests[-1]
    assert (sent["method"], sent["path"]) == ("POST", "/wp-json/wc/v3/orders/727/refunds")
    assert sent["auth"] == "Basic " + base64.b64encode(b"ck_test:cs_test").decode()
    assert sent["body"] == {
        "amount": "30.00", "reason": "broken", "api_refund": True,
        "line_items": [{"id": 315, "quantity": 1, "refund_total": "30.00"}],
    }  # fmt: skip
    actions.cancel_order(order=connected, actor=lead)
    assert FakeWoo.requests[-1]["body"] == {"status": "cancelled"}
    connected.refresh_from_db()
    assert connected.status == OrderStatus.CANCELLED


def test_a_refused_refund_changes_nothing(connected, django_user_model):
    lead = django_user_model.objects.create(username="lead", role="lead")
    FakeWoo.behaviour = "refuse"
    with pytest.raises(Conflict, match="must be greater than zero"):
        actions.refund_order(order=connected, actor=lead, amount=100)
    connected.refresh_from_db()
    assert (connected.refunded, Refund.objects.count()) == (0, 0)


def test_change_the_shipping_address_on_woocommerce(connected, django_user_model):
    agent = django_user_model.objects.create(username="a1", role="agent")
    address = {"address1": "1 New Road", "city": "Leeds", "country_code": "GB", "zip": "LS1"}
    actions.update_shipping_address(order=connected, actor=agent, address=address)
    sent = FakeWoo.requests[-1]
    assert (sent["method"], sent["path"]) == ("PUT", "/wp-json/wc/v3/orders/727")
    assert sent["body"] == {"shipping": {"address_1": "1 New Road", "city": "Leeds",
                                         "country": "GB", "postcode": "LS1"}}  # fmt: skip


def test_reconciliation_reads_every_modified_page_and_remembers_where_it_got(client, connected):
    from kefu.commerce.platforms.woocommerce.sync import reconcile
    from kefu.commerce.tasks import reconcile_store

    store = connected.store
    started = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    assert reconcile(store, now=started) == 2
    first, second = [r for r in FakeWoo.requests if r["method"] == "GET"]
    assert "modified_after" not in first["path"]  # never synced: everything
    assert "page=2" in second["path"] and "orderby=modified" in second["path"]
    assert first["auth"].startswith("Basic ")
    orders = {o.number: o for o in Order.objects.filter(store=store)}
    assert orders["#801"].payment_status == PaymentStatus.PAID
    assert (orders["#802"].payment_status, orders["#802"].refunded) == ("refunded", 11500)
    store.refresh_from_db()
    assert store.synced_at == started
    # A webhook retried late with an older snapshot of #801 changes nothing.
    stale = {**ORDER, "id": 801, "number": "801", "status": "processing",
             "date_modified_gmt": "2026-11-19T08:00:00"}  # fmt: skip
    deliver(client, store, "order.updated", stale, delivery="late")
    assert Order.objects.get(number="#801").fulfillment_status == "fulfilled"

    FakeWoo.requests.clear()
    FakeWoo.behaviour = "down"
    assert reconcile_store.call(store.pk) == 0  # logged; retried from the same point
    assert "modified_after=2026-11-20T08%3A30%3A00" in FakeWoo.requests[0]["path"]
    store.refresh_from_db()
    assert store.synced_at == started
