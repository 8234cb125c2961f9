"""Shopify webhooks: ``POST /commerce/webhooks/shopify/<store_id>``.

Verified by ``X-Shopify-Hmac-Sha256``, stored and deduplicated by ``X-Shopify-Event-Id`` (or
``X-Shopify-Webhook-Id``) and acknowledged by :func:`kefu.commerce.webhooks.receive`; the
handlers below run later, in the webhook drain. A handler raising ``InvalidInput`` (a fulfilment
or refund for an order not synced yet) is retried with backoff. Unknown topics are stored and
ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from kefu.commerce import actions, webhooks
from kefu.commerce.models import Order, Platform, Shipment, Store
from kefu.commerce.platforms.shopify import payloads
from kefu.core.errors import InvalidInput

logger = logging.getLogger(__name__)


def _order(store: Store, payload: dict[str, Any]) -> None:
    actions.upsert_order(store=store, data=payloads.order_data(payload))


def _known_order(store: Store, external_id: Any) -> Order:
    order = Order.objects.filter(store=store, external_id=str(external_id)).first()
    if order is None:
        # The order webhook has not been processed yet: refused, so the drain retries it later.
        raise InvalidInput(f"order {external_id} not synced yet")
    return order


def _fulfillment(store: Store, payload: dict[str, Any]) -> None:
    order = _known_order(store, payload.get("order_id"))
    numbers = payload.get("tracking_numbers") or [payload.get("tracking_number") or ""]
    existing = Shipment.objects.filter(order=order, external_id=str(payload.get("id"))).first()
    actions.upsert_shipment(
        order=order,
        external_id=str(payload.get("id")),
        carrier=str(payload.get("tracking_company") or "")[:32],
        tracking_number=str(numbers[0] or ""),
        status=payloads.shipment_status(payload),
        events=existing.events if existing else [],
    )


def _refund(store: Store, payload: dict[str, Any]) -> None:
    order = _known_order(store, payload.get("order_id"))
    amount = sum(
        payloads._amount(t.get("amount"), order.currency)
        for t in payload.get("transactions") or []
        if t.get("kind") == "refund" and t.get("status") == "success"
    )
    by_external = {line.external_id: line.pk for line in order.lines.all()}
    lines = [
        actions.RefundLine(line_id=by_external[str(i["line_item_id"])], quantity=int(i["quantity"]))
        for i in payload.get("refund_line_items") or []
        if str(i.get("line_item_id")) in by_external
    ]
    actions.record_platform_refund(
        order=order,
        external_id=f"gid://shopify/Refund/{payload.get('id')}",
        amount=amount,
        lines=lines,
    )


def _customer_redact(store: Store, payload: dict[str, Any]) -> None:
    ids = [str(i) for i in payload.get("orders_to_redact") or []]
    actions.redact_orders(store=store, external_ids=ids)


def _shop_redact(store: Store, payload: dict[str, Any]) -> None:
    actions.redact_orders(store=store, external_ids=None)


def _data_request(store: Store, payload: dict[str, Any]) -> None:
    # Recorded as a delivery; the customers app's privacy export answers the shop owner.
    logger.info("shopify data request for store %s", store.pk)


SOURCE = webhooks.register(
    webhooks.Source(
        platform=Platform.SHOPIFY,
        signature_header="X-Shopify-Hmac-Sha256",
        topic_header="X-Shopify-Topic",
        id_headers=("X-Shopify-Event-Id", "X-Shopify-Webhook-Id"),
        handlers={
            "orders/create": _order,
            "orders/updated": _order,
            "orders/cancelled": _order,
            "fulfillments/create": _fulfillment,
            "fulfillments/update": _fulfillment,
            "refunds/create": _refund,
            "customers/data_request": _data_request,
            "customers/redact": _customer_redact,
            "shop/redact": _shop_redact,
        },
    )
)


webhook = webhooks.endpoint(SOURCE)
