"""Shopify webhooks: ``POST /commerce/webhooks/shopify/<store_id>``.

Verified by ``X-Shopify-Hmac-Sha256`` (base64 HMAC-SHA256 of the raw body with the store's
webhook secret, compared in constant time) before anything is parsed; deduplicated by
``X-Shopify-Event-Id`` (a repeat answers 200 and changes nothing). The delivery row and the
change it carries are written in one transaction, so a failure leaves no half-done state and
Shopify's retry processes it again. Unknown topics are acknowledged and ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from kefu.commerce import actions
from kefu.commerce.models import Order, Platform, Shipment, Store, WebhookDelivery
from kefu.commerce.platforms.shopify import payloads
from kefu.core.errors import InvalidInput

logger = logging.getLogger(__name__)

MAX_BODY = 5 * 1024 * 1024


def signature_valid(secret: str, body: bytes, header: str) -> bool:
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return bool(secret) and hmac.compare_digest(expected, header.encode())


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, store_id: int) -> HttpResponse:
    store = Store.objects.filter(pk=store_id, platform=Platform.SHOPIFY).first()
    body = request.body
    if store is None or len(body) > MAX_BODY:
        return JsonResponse({"error": "unknown store"}, status=404)
    if not signature_valid(
        store.webhook_secret, body, request.headers.get("X-Shopify-Hmac-Sha256", "")
    ):
        return JsonResponse({"error": "bad signature"}, status=401)
    topic = request.headers.get("X-Shopify-Topic", "")
    event_id = request.headers.get("X-Shopify-Event-Id", "") or request.headers.get(
        "X-Shopify-Webhook-Id", ""
    )
    if not event_id or not topic:
        return JsonResponse({"error": "missing event id or topic"}, status=400)
    try:
        payload = json.loads(body)
    except ValueError:
        return JsonResponse({"error": "body is not JSON"}, status=400)
    try:
        with transaction.atomic():
            WebhookDelivery.objects.create(
                store=store, platform=Platform.SHOPIFY, event_id=event_id[:128], topic=topic[:64]
            )
            handle(store, topic, payload)
    except IntegrityError:
        return JsonResponse({"status": "duplicate"})
    except InvalidInput as exc:
        # Signed but unusable now (often: a fulfilment before its order). Not 2xx, so Shopify
        # retries on its schedule and gives up in the end; nothing was written.
        logger.warning("shopify %s for store %s refused: %s", topic, store.pk, exc.message)
        return JsonResponse({"status": "refused", "error": exc.message}, status=422)
    return JsonResponse({"status": "ok"})


def handle(store: Store, topic: str, payload: dict[str, Any]) -> None:
    handler = HANDLERS.get(topic)
    if handler is not None:
        handler(store, payload)


def _order(store: Store, payload: dict[str, Any]) -> None:
    actions.upsert_order(store=store, data=payloads.order_data(payload))


def _known_order(store: Store, external_id: Any) -> Order:
    order = Order.objects.filter(store=store, external_id=str(external_id)).first()
    if order is None:
        # The order webhook has not arrived yet: refuse, so Shopify retries this one later.
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
    # Recorded as a delivery (the row written above); the customers app's privacy export
    # answers the shop owner. Nothing to change here.
    logger.info("shopify data request for store %s", store.pk)


HANDLERS = {
    "orders/create": _order,
    "orders/updated": _order,
    "orders/cancelled": _order,
    "fulfillments/create": _fulfillment,
    "fulfillments/update": _fulfillment,
    "refunds/create": _refund,
    "customers/data_request": _data_request,
    "customers/redact": _customer_redact,
    "shop/redact": _shop_redact,
}
