"""The orders REST API: scoped reads, refunds (limit and approval status), cancel."""

from __future__ import annotations

import pytest

from kefu.accounts.actions import create_token
from kefu.commerce.models import OrderStatus, RefundStatus
from tests.commerce.conftest import make_order
from tests.factories import ConversationFactory, StoreFactory


@pytest.fixture
def api(client, agent):
    headers = {"Authorization": f"Bearer {create_token(user=agent, name='t')[1]}"}

    class Api:
        def get(self, path):
            return client.get(f"/api/v1{path}", headers=headers)

        def post(self, path, body):
            return client.post(f"/api/v1{path}", body, content_type="application/json",
                               headers=headers)  # fmt: skip

    return Api()


def test_list_and_detail_are_scoped(api, shop, inbox):
    order = make_order(shop, number="#1001")
    foreign = make_order(StoreFactory(), email="other@example.com")
    listed = api.get(f"/customers/{order.customer_id}/orders").json()
    assert [(o["number"], o["total"], o["total_display"]) for o in listed] == [
        ("#1001", 11000, "110.00 USD")
    ]
    assert [line["sku"] for line in listed[0]["lines"]] == ["MUG-B", "POT-1"]
    assert api.get(f"/orders/{order.pk}").status_code == 200
    assert api.get(f"/orders/{foreign.pk}").status_code == 404
    assert api.get(f"/customers/{foreign.customer_id}/orders").json() == []


def test_refund_lines_then_above_the_limit(api, shop, inbox):
    order = make_order(shop)
    conversation = ConversationFactory(inbox=inbox, customer=order.customer)
    mug = order.lines.get(sku="MUG-B")
    answer = api.post(f"/orders/{order.pk}/refunds", {
        "lines": [{"line_id": mug.pk, "quantity": 2}], "conversation_id": conversation.pk,
    })  # fmt: skip
    assert answer.status_code == 201
    assert (answer.json()["amount"], answer.json()["status"]) == (6000, RefundStatus.SUCCEEDED)
    # 50.00 left; the agent's limit is 100.00, so a second order's full refund waits.
    big = make_order(shop)
    pending = api.post(f"/orders/{big.pk}/refunds", {}).json()
    assert (pending["amount_display"], pending["status"]) == ("110.00 USD", "pending_approval")
    too_much = api.post(f"/orders/{order.pk}/refunds", {"amount": 5001})
    assert too_much.status_code == 422
    assert "exceeds the 5000 still refundable" in too_much.json()["detail"]
    assert api.post(f"/orders/{order.pk}/refunds", {"amount": 1.5}).status_code == 422


def test_cancel_and_cancel_again(api, shop):
    order = make_order(shop)
    answer = api.post(f"/orders/{order.pk}/cancel", {"reason": "asked"})
    assert answer.json()["status"] == OrderStatus.CANCELLED
    again = api.post(f"/orders/{order.pk}/cancel", {})
    assert (again.status_code, again.json()["detail"]) == (409, "the order is already cancelled")


@pytest.fixture
def lead_api(client, lead):
    headers = {"Authorization": f"Bearer {create_token(user=lead, name='t')[1]}"}

    def post(path, body):
        return client.post(f"/api/v1{path}", body, content_type="application/json",
                           headers=headers)  # fmt: skip

    return post


def test_a_lead_decides_a_pending_refund(api, lead_api, shop):
    order = make_order(shop)
    pending = api.post(f"/orders/{order.pk}/refunds", {}).json()
    path = f"/orders/{order.pk}/refunds/{pending['id']}/decision"
    assert api.post(path, {"approve": True}).status_code == 403
    decided = lead_api(path, {"approve": True})
    assert (decided.status_code, decided.json()["status"]) == (200, "succeeded")
    assert lead_api(path, {"approve": False}).status_code == 409


def test_returns_and_disputes_through_the_api(api, shop):
    order = make_order(shop)
    mug = order.lines.get(sku="MUG-B")
    created = api.post(f"/orders/{order.pk}/returns", {
        "lines": [{"line_id": mug.pk, "quantity": 1}], "reason": "too small",
    })  # fmt: skip
    assert (created.status_code, created.json()["status"]) == (201, "requested")
    move = f"/orders/{order.pk}/returns/{created.json()['id']}/status"
    assert api.post(move, {"status": "received"}).status_code == 409
    assert api.post(move, {"status": "approved"}).json()["status"] == "approved"
    dispute = api.post(f"/orders/{order.pk}/disputes", {"kind": "claim", "summary": "broken"})
    assert dispute.status_code == 201
    body = dispute.json()
    assert body["status"] == "opened" and body["first_contact_due_at"]
    step = api.post(f"/orders/{order.pk}/disputes/{body['id']}/status", {"status": "first_contact"})
    assert step.json()["first_contact_at"] is not None
    assert api.post(f"/orders/{order.pk}/disputes", {"kind": "war"}).status_code == 422


PUSHED = {
    "external_id": "cs-1", "number": "A-1001", "currency": "KWD",
    "placed_at": "2026-11-01T12:00:00Z", "total": 12345, "subtotal": 12345,
    "email": "pushed@example.com", "payment_status": "paid",
    "lines": [{"external_id": "l1", "title": "Dates", "quantity": 1, "unit_price": 12345}],
}  # fmt: skip


def test_custom_store_push_is_idempotent(client, shop):
    from kefu.commerce.models import Order
    from tests.factories import AgentFactory

    admin = AgentFactory(role="admin")
    headers = {"Authorization": f"Bearer {create_token(user=admin, name='push')[1]}"}

    def put(path, body, who=headers):
        return client.put(f"/api/v1{path}", body, content_type="application/json", headers=who)

    first = put(f"/stores/{shop.pk}/orders", PUSHED)
    again = put(f"/stores/{shop.pk}/orders", {**PUSHED, "status": "cancelled"})
    assert (first.status_code, first.json()["created"], again.json()["created"]) == (
        200,
        True,
        False,
    )
    order = Order.objects.get(external_id="cs-1")
    assert (order.total, order.currency, order.status) == (12345, "KWD", "cancelled")
    shipment = put(f"/stores/{shop.pk}/orders/cs-1/shipments", {
        "tracking_number": "RA473124829GB", "carrier": "royal_mail", "status": "in_transit",
        "events": [{"at": "2026-11-02T09:00:00Z", "status": "in_transit", "location": "Leeds"}],
    })  # fmt: skip
    assert shipment.json()["created"] is True
    assert order.shipments.get().events[0]["location"] == "Leeds"
    bad = put(f"/stores/{shop.pk}/orders", {**PUSHED, "total": 1.5})
    assert bad.status_code == 422
    missing = put(f"/stores/{shop.pk}/orders/nope/shipments", {"tracking_number": "x",
                                                              "status": "delivered"})  # fmt: skip
    assert missing.status_code == 404


def test_agents_cannot_push(client, agent, shop):
    headers = {"Authorization": f"Bearer {create_token(user=agent, name='t')[1]}"}
    answer = client.put(f"/api/v1/stores/{shop.pk}/orders", PUSHED,
                        content_type="application/json", headers=headers)  # fmt: skip
    assert answer.status_code == 403
