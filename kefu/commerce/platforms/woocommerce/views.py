"""WooCommerce webhooks: ``POST /commerce/webhooks/woocommerce/<store_id>``.

Verified by ``X-WC-Webhook-Signature`` (base64 HMAC-SHA256 of the raw body with the webhook's
secret) before parsing; deduplicated by ``X-WC-Webhook-Delivery-ID``; the delivery row and the
change are one transaction. WooCommerce's unsigned creation ping (``webhook_id=…`` form body, no
topic) is acknowledged and changes nothing. Topics: ``order.created``, ``order.updated``
(also ``order.deleted`` and ``order.restored`` resync the snapshot they carry).
"""

from __future__ import annotations

import json
import logging

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from kefu.commerce import actions
from kefu.commerce.models import Platform, Store, WebhookDelivery
from kefu.commerce.platforms.shopify.views import MAX_BODY, signature_valid
from kefu.commerce.platforms.woocommerce import payloads
from kefu.core.errors import InvalidInput

logger = logging.getLogger(__name__)

ORDER_TOPICS = frozenset({"order.created", "order.updated", "order.restored"})


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, store_id: int) -> HttpResponse:
    store = Store.objects.filter(pk=store_id, platform=Platform.WOOCOMMERCE).first()
    body = request.body
    if store is None or len(body) > MAX_BODY:
        return JsonResponse({"error": "unknown store"}, status=404)
    topic = request.headers.get("X-WC-Webhook-Topic", "")
    if not topic and body.startswith(b"webhook_id="):
        return JsonResponse({"status": "pong"})
    if not signature_valid(
        store.webhook_secret, body, request.headers.get("X-WC-Webhook-Signature", "")
    ):
        return JsonResponse({"error": "bad signature"}, status=401)
    delivery = request.headers.get("X-WC-Webhook-Delivery-ID", "")
    if not delivery or not topic:
        return JsonResponse({"error": "missing delivery id or topic"}, status=400)
    try:
        payload = json.loads(body)
    except ValueError:
        return JsonResponse({"error": "body is not JSON"}, status=400)
    try:
        with transaction.atomic():
            WebhookDelivery.objects.create(
                store=store, platform=Platform.WOOCOMMERCE, event_id=delivery[:128],
                topic=topic[:64],
            )  # fmt: skip
            if topic in ORDER_TOPICS:
                actions.upsert_order(store=store, data=payloads.order_data(payload))
    except IntegrityError:
        return JsonResponse({"status": "duplicate"})
    except InvalidInput as exc:
        logger.warning("woocommerce %s for store %s refused: %s", topic, store.pk, exc.message)
        return JsonResponse({"status": "refused", "error": exc.message}, status=422)
    return JsonResponse({"status": "ok"})
