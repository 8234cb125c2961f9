"""REST API v1: orders (scoped like the panel), refunds and cancellation.

Amounts are integers of the order currency's minor unit, with a ``*_display`` string beside
them; a refund request takes either ``lines`` or ``amount`` (minor units) or neither (all that is
still refundable). Above the caller's refund limit the answer is the refund with status
``pending_approval``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import File, Router, Schema, Status, UploadedFile
from pydantic import ConfigDict, Field

from kefu.accounts.models import Agent
from kefu.commerce import actions, money, selectors
from kefu.commerce.models import Order, Refund
from kefu.conversations.selectors import get_conversation
from kefu.core.errors import Forbidden, NotFound

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


def _caller_and_order(request: HttpRequest, order_id: int) -> tuple[Agent, Order]:
    """The caller and the order they name, through the scoped selector (NotFound otherwise)."""
    user = _user(request)
    return user, selectors.get_order(user, order_id)


def _one_of(related: Any, pk: int, noun: str) -> Any:
    """The object ``pk`` among the order's ``related`` (refunds, returns...), or NotFound."""
    found = related.filter(pk=pk).first()
    if found is None:
        raise NotFound(f"{noun} {pk} not found")
    return found


def _conversation_of(user: Agent, conversation_id: int | None):  # type: ignore[no-untyped-def]
    return get_conversation(user, conversation_id) if conversation_id else None


def _lines(items: list[Any]) -> list[actions.RefundLine]:
    return [actions.RefundLine(line_id=i.line_id, quantity=i.quantity) for i in items]


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
    user, order = _caller_and_order(request, order_id)
    refund = actions.refund_order(
        order=order,
        actor=user,
        lines=_lines(payload.lines),
        amount=payload.amount,
        reason=payload.reason,
        conversation=_conversation_of(user, payload.conversation_id),
    )
    return Status(201, _refund_out(refund, order.currency))


@router.post("/orders/{order_id}/cancel", response=OrderOut)
def order_cancel(request: HttpRequest, order_id: int, payload: CancelIn):  # type: ignore[no-untyped-def]
    user, order = _caller_and_order(request, order_id)
    conversation = _conversation_of(user, payload.conversation_id)
    actions.cancel_order(order=order, actor=user, reason=payload.reason, conversation=conversation)
    return _order_out(selectors.get_order(user, order_id))


# --- approvals, returns, disputes -----------------------------------------------------------------


class DecisionIn(Schema):
    model_config = ConfigDict(extra="forbid")

    approve: bool
    reason: str = Field(default="", max_length=500)


class ReturnLineIn(Schema):
    line_id: int
    quantity: int = Field(gt=0)


class ReturnIn(Schema):
    model_config = ConfigDict(extra="forbid")

    lines: list[ReturnLineIn]
    reason: str = Field(max_length=300)
    condition: str = Field(default="", max_length=100)
    label_url: str = Field(default="", max_length=500)
    conversation_id: int | None = None


class ReturnMoveIn(Schema):
    model_config = ConfigDict(extra="forbid")

    status: str
    label_url: str = Field(default="", max_length=500)


class ReturnOut(Schema):
    id: int
    order_id: int
    status: str
    reason: str
    lines: list[dict]
    condition: str
    label_url: str


class DisputeIn(Schema):
    model_config = ConfigDict(extra="forbid")

    kind: str
    summary: str = Field(default="", max_length=500)
    conversation_id: int | None = None


class DisputeMoveIn(Schema):
    model_config = ConfigDict(extra="forbid")

    status: str
    resolution: str = ""


class DisputeOut(Schema):
    id: int
    order_id: int | None
    kind: str
    status: str
    summary: str
    opened_at: datetime
    first_contact_due_at: datetime
    first_contact_at: datetime | None
    resolution: str


@router.post("/orders/{order_id}/refunds/{refund_id}/decision", response=RefundOut)
def refund_decision(request: HttpRequest, order_id: int, refund_id: int, payload: DecisionIn):  # type: ignore[no-untyped-def]
    """A lead or admin approves (carried out on the platform) or rejects a pending refund."""
    user, order = _caller_and_order(request, order_id)
    refund = _one_of(order.refunds, refund_id, "refund")
    if payload.approve:
        refund = actions.approve_refund(refund=refund, actor=user)
    else:
        refund = actions.reject_refund(refund=refund, actor=user, reason=payload.reason)
    return _refund_out(refund, order.currency)


@router.post("/orders/{order_id}/returns", response={201: ReturnOut})
def return_create(request: HttpRequest, order_id: int, payload: ReturnIn):  # type: ignore[no-untyped-def]
    user, order = _caller_and_order(request, order_id)
    rma = actions.create_return(
        order=order,
        actor=user,
        lines=_lines(payload.lines),
        reason=payload.reason,
        condition=payload.condition,
        label_url=payload.label_url,
        conversation=_conversation_of(user, payload.conversation_id),
    )
    return Status(201, rma)


@router.post("/orders/{order_id}/returns/{return_id}/status", response=ReturnOut)
def return_move(request: HttpRequest, order_id: int, return_id: int, payload: ReturnMoveIn):  # type: ignore[no-untyped-def]
    user, order = _caller_and_order(request, order_id)
    rma = _one_of(order.returns, return_id, "return")
    return actions.advance_return(
        rma=rma, actor=user, status=payload.status, label_url=payload.label_url
    )


@router.post("/orders/{order_id}/disputes", response={201: DisputeOut})
def dispute_open(request: HttpRequest, order_id: int, payload: DisputeIn):  # type: ignore[no-untyped-def]
    user, order = _caller_and_order(request, order_id)
    dispute = actions.open_dispute(
        kind=payload.kind,
        actor=user,
        summary=payload.summary,
        order=order,
        conversation=_conversation_of(user, payload.conversation_id),
    )
    return Status(201, dispute)


@router.post("/orders/{order_id}/disputes/{dispute_id}/status", response=DisputeOut)
def dispute_move(request: HttpRequest, order_id: int, dispute_id: int, payload: DisputeMoveIn):  # type: ignore[no-untyped-def]
    user, order = _caller_and_order(request, order_id)
    dispute = _one_of(order.disputes, dispute_id, "dispute")
    return actions.advance_dispute(
        dispute=dispute, actor=user, status=payload.status, resolution=payload.resolution
    )


# --- custom stores push orders and shipments -----------------------------------------------------


class PushLineIn(Schema):
    external_id: str = Field(default="", max_length=128)
    sku: str = Field(default="", max_length=128)
    title: str = Field(max_length=300)
    quantity: int = Field(ge=0)
    unit_price: int = Field(ge=0, description="minor units")
    refunded_quantity: int = Field(default=0, ge=0)


class PushOrderIn(Schema):
    """An order from a custom store. Amounts are integers of the currency's minor unit."""

    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=128)
    number: str = Field(min_length=1, max_length=64)
    currency: str
    placed_at: datetime
    total: int = Field(ge=0)
    subtotal: int = Field(default=0, ge=0)
    shipping: int = Field(default=0, ge=0)
    tax: int = Field(default=0, ge=0)
    refunded: int = Field(default=0, ge=0)
    email: str = Field(default="", max_length=254)
    phone: str = Field(default="", max_length=32)
    payment_status: str = "pending"
    fulfillment_status: str = "unfulfilled"
    status: str = "open"
    shipping_address: dict = {}
    lines: list[PushLineIn] = []


class TrackingEventIn(Schema):
    at: datetime
    status: str
    location: str = ""
    description: str = ""


class PushShipmentIn(Schema):
    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(default="", max_length=128)
    carrier: str = Field(default="", max_length=32)
    tracking_number: str = Field(max_length=64)
    status: str
    events: list[TrackingEventIn] = []


class PushedOut(Schema):
    id: int
    created: bool


def _pushing_store(user: Agent, store_id: int):  # type: ignore[no-untyped-def]
    """Only admins push store data (an integration's token belongs to an admin)."""
    from kefu.commerce.models import Store

    if not (user.is_active and user.sees_every_inbox):
        raise Forbidden("only an admin's token can push store data")
    store = Store.objects.filter(pk=store_id).first()
    if store is None:
        raise NotFound(f"store {store_id} not found")
    return store


@router.put("/stores/{store_id}/orders", response=PushedOut)
def push_order(request: HttpRequest, store_id: int, payload: PushOrderIn):  # type: ignore[no-untyped-def]
    """Create or update an order of a custom store (idempotent by ``external_id``)."""
    store = _pushing_store(_user(request), store_id)
    data = actions.OrderData(
        **payload.model_dump(exclude={"lines"}),
        lines=[actions.LineData(**line.model_dump()) for line in payload.lines],
        raw=payload.model_dump(mode="json"),
    )
    order, created = actions.upsert_order(store=store, data=data)
    return {"id": order.pk, "created": created}


@router.put("/stores/{store_id}/orders/{external_id}/shipments", response=PushedOut)
def push_shipment(request: HttpRequest, store_id: int, external_id: str, payload: PushShipmentIn):  # type: ignore[no-untyped-def]
    """Create or update a shipment (by its ``external_id``, else its tracking number)."""
    store = _pushing_store(_user(request), store_id)
    order = Order.objects.filter(store=store, external_id=external_id).first()
    if order is None:
        raise NotFound(f"order {external_id} not found")
    existed = (
        order.shipments.filter(external_id=payload.external_id).exists()
        if payload.external_id
        else order.shipments.filter(
            tracking_number=payload.tracking_number.replace(" ", "").upper()
        ).exists()
    )
    shipment = actions.upsert_shipment(
        order=order,
        external_id=payload.external_id,
        carrier=payload.carrier,
        tracking_number=payload.tracking_number,
        status=payload.status,
        events=[e.model_dump(mode="json") for e in payload.events],
    )
    return {"id": shipment.pk, "created": not existed}


class ImportOut(Schema):
    created: int
    updated: int
    errors: list[str]


@router.post("/stores/{store_id}/orders/import", response=ImportOut)
def import_orders(request: HttpRequest, store_id: int, file: UploadedFile = File(...)):  # type: ignore[no-untyped-def]  # noqa: B008
    """Import a custom store's orders from CSV (see kefu.commerce.imports); admins only."""
    from kefu.commerce.imports import import_orders_csv

    store = _pushing_store(_user(request), store_id)
    result = import_orders_csv(store=store, content=file.read())
    return {"created": result.created, "updated": result.updated, "errors": result.errors}
