"""WooCommerce REST v3 order payloads to kefu's platform-neutral snapshots.

Amount strings ("115.00") become minor units through Decimal. A line's ``price`` is a JSON
number (a float) in WooCommerce, so it is never read: the unit price is the line's ``subtotal``
string divided by its quantity.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from kefu.commerce import money
from kefu.commerce.actions import LineData, OrderData
from kefu.commerce.models import FulfillmentStatus, OrderStatus, PaymentStatus
from kefu.core.errors import InvalidInput

# WooCommerce status -> (payment, fulfilment, order status)
STATUSES = {
    "pending": (PaymentStatus.PENDING, FulfillmentStatus.UNFULFILLED, OrderStatus.OPEN),
    "on-hold": (PaymentStatus.PENDING, FulfillmentStatus.UNFULFILLED, OrderStatus.OPEN),
    "processing": (PaymentStatus.PAID, FulfillmentStatus.UNFULFILLED, OrderStatus.OPEN),
    "completed": (PaymentStatus.PAID, FulfillmentStatus.FULFILLED, OrderStatus.OPEN),
    "cancelled": (PaymentStatus.VOIDED, FulfillmentStatus.UNFULFILLED, OrderStatus.CANCELLED),
    "refunded": (PaymentStatus.REFUNDED, FulfillmentStatus.UNFULFILLED, OrderStatus.OPEN),
    "failed": (PaymentStatus.FAILED, FulfillmentStatus.UNFULFILLED, OrderStatus.OPEN),
}


def _minor(value: Any, currency: str) -> int:
    text = str(value if value not in (None, "") else "0").strip().lstrip("-")
    return money.to_minor(text, currency)


def _gmt(value: Any) -> datetime | None:
    """A ``*_gmt`` field (no offset: UTC), or None."""
    parsed = parse_datetime(str(value or ""))
    return parsed.replace(tzinfo=UTC) if parsed is not None and parsed.tzinfo is None else parsed


def order_data(payload: dict[str, Any]) -> OrderData:
    try:
        currency = money.normalize_currency(payload["currency"])
        placed = parse_datetime(str(payload.get("date_created_gmt") or ""))
        if placed is None:
            raise InvalidInput("order without date_created_gmt", field="date_created_gmt")
        if placed.tzinfo is None:  # *_gmt fields carry no offset: they are UTC
            placed = placed.replace(tzinfo=UTC)
        lines = []
        for item in payload.get("line_items") or []:
            quantity = int(item["quantity"])
            subtotal = _minor(item.get("subtotal"), currency)
            lines.append(
                LineData(
                    external_id=str(item["id"]),
                    sku=str(item.get("sku") or ""),
                    title=str(item.get("name") or ""),
                    quantity=quantity,
                    unit_price=subtotal // quantity if quantity else 0,
                )
            )
        refunded = sum(_minor(r.get("total"), currency) for r in payload.get("refunds") or [])
        payment, fulfilment, status = STATUSES.get(str(payload.get("status")), STATUSES["pending"])
        if payment == PaymentStatus.PAID and refunded:
            payment = PaymentStatus.PARTIALLY_REFUNDED
        billing = payload.get("billing") or {}
        total = _minor(payload.get("total"), currency)
        return OrderData(
            external_id=str(payload["id"]),
            number=f"#{payload.get('number') or payload['id']}",
            currency=currency,
            placed_at=placed,
            subtotal=sum(line.unit_price * line.quantity for line in lines),
            shipping=_minor(payload.get("shipping_total"), currency),
            tax=_minor(payload.get("total_tax"), currency),
            total=total,
            refunded=min(refunded, total),
            email=str(billing.get("email") or ""),
            phone=str(billing.get("phone") or ""),
            payment_status=payment,
            fulfillment_status=fulfilment,
            status=status,
            shipping_address=payload.get("shipping") or {},
            lines=lines,
            raw=payload,
            changed_at=_gmt(payload.get("date_modified_gmt")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"not a WooCommerce order payload: {exc}") from exc
