"""Shopify webhook payloads (REST resource shapes) to kefu's platform-neutral snapshots.

Amounts arrive as decimal strings in the shop currency ("19.99"); they become integer minor
units through :func:`kefu.commerce.money.to_minor`, never floats.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from kefu.commerce import money
from kefu.commerce.actions import LineData, OrderData
from kefu.commerce.models import FulfillmentStatus, OrderStatus, PaymentStatus, ShipmentStatus
from kefu.core.errors import InvalidInput

FINANCIAL = {
    "pending": PaymentStatus.PENDING,
    "authorized": PaymentStatus.AUTHORIZED,
    "partially_paid": PaymentStatus.PAID,
    "paid": PaymentStatus.PAID,
    "partially_refunded": PaymentStatus.PARTIALLY_REFUNDED,
    "refunded": PaymentStatus.REFUNDED,
    "voided": PaymentStatus.VOIDED,
    "expired": PaymentStatus.FAILED,
}
FULFILLMENT = {
    None: FulfillmentStatus.UNFULFILLED,
    "unfulfilled": FulfillmentStatus.UNFULFILLED,
    "partial": FulfillmentStatus.PARTIAL,
    "fulfilled": FulfillmentStatus.FULFILLED,
    "restocked": FulfillmentStatus.RESTOCKED,
}
SHIPMENT = {
    None: ShipmentStatus.LABEL_CREATED,
    "label_printed": ShipmentStatus.LABEL_CREATED,
    "label_purchased": ShipmentStatus.LABEL_CREATED,
    "confirmed": ShipmentStatus.LABEL_CREATED,
    "ready_for_pickup": ShipmentStatus.OUT_FOR_DELIVERY,
    "in_transit": ShipmentStatus.IN_TRANSIT,
    "attempted_delivery": ShipmentStatus.EXCEPTION,
    "out_for_delivery": ShipmentStatus.OUT_FOR_DELIVERY,
    "delivered": ShipmentStatus.DELIVERED,
    "failure": ShipmentStatus.EXCEPTION,
}


def _amount(value: Any, currency: str) -> int:
    return money.to_minor(str(value if value not in (None, "") else "0"), currency)


def _when(value: Any) -> datetime:
    parsed = parse_datetime(str(value or ""))
    if parsed is None:
        raise InvalidInput(f"not a timestamp: {value!r}", field="created_at")
    return parsed


def order_data(payload: dict[str, Any]) -> OrderData:
    """An :class:`OrderData` from an ``orders/create`` or ``orders/updated`` payload."""
    try:
        currency = money.normalize_currency(payload["currency"])
        shipping = (
            payload.get("total_shipping_price_set", {}).get("shop_money", {}).get("amount", "0")
        )
        refunded = sum(
            _amount(t.get("amount"), currency)
            for refund in payload.get("refunds") or []
            for t in refund.get("transactions") or []
            if t.get("kind") == "refund" and t.get("status") == "success"
        )
        refunded_quantities: dict[str, int] = {}
        for refund in payload.get("refunds") or []:
            for item in refund.get("refund_line_items") or []:
                key = str(item.get("line_item_id"))
                refunded_quantities[key] = refunded_quantities.get(key, 0) + int(item["quantity"])
        lines = [
            LineData(
                external_id=str(item["id"]),
                sku=item.get("sku") or "",
                title=item.get("title") or item.get("name") or "",
                quantity=int(item["quantity"]),
                unit_price=_amount(item.get("price"), currency),
                refunded_quantity=min(
                    refunded_quantities.get(str(item["id"]), 0), int(item["quantity"])
                ),
            )
            for item in payload.get("line_items") or []
        ]
        status = OrderStatus.OPEN
        if payload.get("cancelled_at"):
            status = OrderStatus.CANCELLED
        elif payload.get("closed_at"):
            status = OrderStatus.CLOSED
        return OrderData(
            external_id=str(payload["id"]),
            number=str(payload.get("name") or f"#{payload['order_number']}"),
            currency=currency,
            placed_at=_when(payload.get("created_at")),
            subtotal=_amount(payload.get("subtotal_price"), currency),
            shipping=_amount(shipping, currency),
            tax=_amount(payload.get("total_tax"), currency),
            total=_amount(payload.get("total_price"), currency),
            refunded=refunded,
            email=payload.get("email") or payload.get("contact_email") or "",
            phone=payload.get("phone") or "",
            payment_status=FINANCIAL.get(
                str(payload.get("financial_status")), PaymentStatus.PENDING
            ),
            fulfillment_status=FULFILLMENT.get(
                payload.get("fulfillment_status"), FulfillmentStatus.UNFULFILLED
            ),
            status=status,
            shipping_address=payload.get("shipping_address") or {},
            lines=lines,
            raw=payload,
            changed_at=parse_datetime(str(payload.get("updated_at") or "")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"not a Shopify order payload: {exc}") from exc


def shipment_status(payload: dict[str, Any]) -> str:
    return SHIPMENT.get(payload.get("shipment_status"), ShipmentStatus.LABEL_CREATED)
