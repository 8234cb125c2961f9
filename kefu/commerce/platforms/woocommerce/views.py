"""WooCommerce webhooks: ``POST /commerce/webhooks/woocommerce/<store_id>``.

Verified by ``X-WC-Webhook-Signature`` (base64 HMAC-SHA256 of the raw body with the webhook's
secret), stored and deduplicated by ``X-WC-Webhook-Delivery-ID`` and acknowledged by
:func:`kefu.commerce.webhooks.receive`; processed later by the webhook drain. WooCommerce's
unsigned creation ping (``webhook_id=…`` form body, no topic) is answered and stores nothing.
Topics: ``order.created``, ``order.updated`` and ``order.restored`` resync the snapshot they
carry; others are stored and ignored.
"""

from __future__ import annotations

from typing import Any

from kefu.commerce import actions, webhooks
from kefu.commerce.models import Platform, Store
from kefu.commerce.platforms.woocommerce import payloads


def _order(store: Store, payload: dict[str, Any]) -> None:
    actions.upsert_order(store=store, data=payloads.order_data(payload))


def _is_ping(body: bytes, topic: str) -> bool:
    return not topic and body.startswith(b"webhook_id=")


SOURCE = webhooks.register(
    webhooks.Source(
        platform=Platform.WOOCOMMERCE,
        signature_header="X-WC-Webhook-Signature",
        topic_header="X-WC-Webhook-Topic",
        id_headers=("X-WC-Webhook-Delivery-ID",),
        handlers={"order.created": _order, "order.updated": _order, "order.restored": _order},
        is_ping=_is_ping,
    )
)


webhook = webhooks.endpoint(SOURCE)
