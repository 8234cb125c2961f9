"""REST API v1: orders (scoped like the panel), refunds and cancellation.

Amounts are integers of the order currency's minor unit, with a ``*_display`` string beside
them; a refund request takes either ``lines`` or ``amount`` (minor units) or neither (all that is
still refundable). Above the caller's refund limit the answer is the refund with status
``pending_approval``.
"""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import ConfigDict, Field

from kefu.accounts.models import Agent
from kefu.commerce import actions, money, selectors
from kefu.commerce.models import Order, Refund
from kefu.conversations.selectors import get_conversation

router = Router(tags=["commerce"])


class LineOut(Schema):
    id: int
    sku: str
    title: str
    quantity: int
    unit_price: int
    refunded_quantity: int


class ShipmentOut(Schema):
    id: int
    carrier: str
    tracking_number: str
    status: str
    events: list[dict]


class RefundOut(Schema):
    id: int
    order_id: int
    amount: int
    amount_display: str
    status: str
    lines: list[dict]
    reason: str
    external_id: str
    created_at: datetime


class OrderOut(Schema):
    id: int
    store_id: int
    customer_id: int | None
    number: str
    external_id: str
    currency: str
    subtotal: int
    shipping: int
    tax: int
    total: int
    total_display: str
    refunded: int
    payment_status: str
    fulfillment_status: str
    status: str
    placed_at: datetime
    lines: list[LineOut]
    shipments: list[ShipmentOut]
    refunds: list[RefundOut]


class RefundLineIn(Schema):
    line_id: int
    quantity: int = Field(gt=0)


class RefundIn(Schema):
    model_config = ConfigDict(extra="forbid")

    lines: list[RefundLineIn] = []
    amount: int | None = Field(default=None, gt=0)
    reason: str = Field(default="", max_length=300)
    conversation_id: int | None = None


class CancelIn(Schema):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=255)
    conversation_id: int | None = None


def _user(request: HttpRequest) -> Agent:
    return request.auth  # type: ignore[attr-defined, no-any-return]


def _refund_out(refund: Refund, currency: str) -> dict:
    return {
        "id": refund.pk,
        "order_id": refund.order_id,
        "amount": refund.amount,
        "amount_display": money.format_money(refund.amount, currency),
        "status": refund.status,
        "lines": refund.lines,
        "reason": refund.reason,
        "external_id": refund.external_id,
        "created_at": refund.created_at,
    }


def _order_out(order: Order) -> dict:
    return {
        **{
            name: getattr(order, name)
            for name in (
                "store_id",
                "customer_id",
                "number",
                "external_id",
                "currency",
                "subtotal",
                "shipping",
                "tax",
                "total",
                "refunded",
                "payment_status",
                "fulfillment_status",
                "status",
                "placed_at",
            )
        },
        "id": order.pk,
        "total_display": money.format_money(order.total, order.currency),
        "lines": list(order.lines.all()),
        "shipments": list(order.shipments.all()),
        "refunds": [_refund_out(r, order.currency) for r in order.refunds.all()],
    }


@router.get("/customers/{customer_id}/orders", response=list[OrderOut])
def customer_orders(request: HttpRequest, customer_id: int):  # type: ignore[no-untyped-def]
    """The customer's most recent orders the caller may see (50 at most)."""
    return [_order_out(o) for o in selectors.orders_for_customer(_user(request), customer_id)]


@router.get("/orders/{order_id}", response=OrderOut)
def order_detail(request: HttpRequest, order_id: int):  # type: ignore[no-untyped-def]
    return _order_out(selectors.get_order(_user(request), order_id))


@router.post("/orders/{order_id}/refunds", response={201: RefundOut})
def order_refund(request: HttpRequest, order_id: int, payload: RefundIn):  # type: ignore[no-untyped-def]
    user = _user(request)
    order = selectors.get_order(user, order_id)
    conversation = (
        get_conversation(user, payload.conversation_id) if payload.conversation_id else None
    )
    refund = actions.refund_order(
        order=order,
        actor=user,
        lines=[actions.RefundLine(line_id=i.line_id, quantity=i.quantity) for i in payload.lines],
        amount=payload.amount,
        reason=payload.reason,
        conversation=conversation,
    )
    return Status(201, _refund_out(refund, order.currency))


@router.post("/orders/{order_id}/cancel", response=OrderOut)
def order_cancel(request: HttpRequest, order_id: int, payload: CancelIn):  # type: ignore[no-untyped-def]
    user = _user(request)
    order = selectors.get_order(user, order_id)
    conversation = (
        get_conversation(user, payload.conversation_id) if payload.conversation_id else None
    )
    actions.cancel_order(order=order, actor=user, reason=payload.reason, conversation=conversation)
    return _order_out(selectors.get_order(user, order_id))
