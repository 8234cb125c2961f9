"""Every write to orders, shipments, refunds, returns and disputes goes through here.

Each action is keyword-only, validates and authorizes, writes in one transaction, appends an
:class:`OrderEvent` (and, for what an agent does, a ConversationEvent of kind ``order_action`` on
the conversation it was done from, or on every linked conversation), and emits ``order.updated``
or ``shipment.updated`` after commit with ``order_id`` and ``conversation_ids`` (the automation
app's ORDER_EVENT / SHIPMENT_EVENT triggers act on each conversation named).

Callers pass objects they obtained through :mod:`kefu.commerce.selectors` (scoped to the agent).
Platform calls (refund, cancel) happen while the order's row is locked and before anything is
written: when the platform refuses, nothing is recorded but a ``*_failed`` order event.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from kefu.accounts.models import Agent, Role
from kefu.commerce import money
from kefu.commerce.carriers import find_order_numbers, find_tracking_numbers
from kefu.commerce.carriers.providers import TrackingUpdate
from kefu.commerce.models import (
    DISPUTE_ORDER,
    RETURN_TRANSITIONS,
    ConversationOrder,
    Dispute,
    DisputeKind,
    DisputeStatus,
    FulfillmentStatus,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    PaymentStatus,
    Refund,
    RefundStatus,
    ReturnRequest,
    ReturnStatus,
    Shipment,
    ShipmentStatus,
    Store,
)
from kefu.commerce.platforms import Gateway, PlatformError, gateway_for
from kefu.conversations.models import Conversation, ConversationEvent, EventKind
from kefu.core.errors import Conflict, Forbidden, InvalidInput
from kefu.core.events import emit

P = ParamSpec("P")
R = TypeVar("R")

FIRST_CONTACT_WITHIN = timedelta(hours=24)
RESOLUTIONS = ("repair", "replace", "refund", "mediated")
# Refund limit per role, in major units of the store currency (None: no limit). Overridden by
# settings.KEFU_REFUND_LIMITS.
DEFAULT_REFUND_LIMITS: dict[str, str | None] = {
    Role.AGENT: "100.00",
    Role.LEAD: None,
    Role.ADMIN: None,
}
REFUNDABLE_PAYMENTS = (PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED)


# --- timelines and events -----------------------------------------------------------------------


def _conversation_ids(order: Order) -> list[int]:
    return list(
        ConversationOrder.objects.filter(order=order)
        .order_by("conversation_id")
        .values_list("conversation_id", flat=True)
    )


def _record(
    order: Order,
    kind: str,
    actor: Agent | None,
    /,
    *,
    conversation: Conversation | None = None,
    on_conversations: bool = True,
    event: str = "order.updated",
    **data: Any,
) -> None:
    """Append ``kind`` to the order's timeline (and the conversations'), emit ``event``."""
    OrderEvent.objects.create(order=order, kind=kind, actor=actor, data=data)
    if conversation is not None:
        ConversationOrder.objects.get_or_create(conversation=conversation, order=order)
    ids = _conversation_ids(order)
    if on_conversations:
        targets = [conversation.pk] if conversation is not None else ids
        payload = {"action": kind, "order_id": order.pk, "order_number": order.number, **data}
        ConversationEvent.objects.bulk_create(
            ConversationEvent(
                conversation_id=pk, kind=EventKind.ORDER_ACTION, actor=actor, data=payload
            )
            for pk in targets
        )
    _emit(event, order, ids, kind, actor)


def _locked(order: Order) -> Order:
    return Order.objects.select_for_update().select_related("store").get(pk=order.pk)


class _Refused(Exception):
    """A platform refused: raised inside the action's transaction so it rolls back."""

    def __init__(self, order: Order, kind: str, actor: Agent | None, message: str, **data: Any):
        super().__init__(message)
        self.order_id, self.kind, self.actor, self.message = order.pk, kind, actor, message
        self.data = data


def _traces_refusals(action: Callable[P, R]) -> Callable[P, R]:
    """Outside ``action``'s transaction: a refused platform call leaves an order event (the
    action itself wrote nothing) and reaches the caller as :class:`Conflict`."""

    @functools.wraps(action)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return action(*args, **kwargs)
        except _Refused as refused:
            OrderEvent.objects.create(
                order_id=refused.order_id,
                kind=refused.kind,
                actor=refused.actor,
                data={"error": refused.message, **refused.data},
            )
            raise Conflict(f"the store refused: {refused.message}") from refused

    return run


def _on_platform(
    order: Order, failed: str, actor: Agent | None, call: Callable[[Gateway], R], **data: Any
) -> R:
    """Run ``call`` with the order's platform gateway; a refusal becomes :class:`_Refused`
    (the action's transaction rolls back, a ``failed`` order event records why)."""
    try:
        return call(gateway_for(order.store))
    except PlatformError as exc:
        raise _Refused(order, failed, actor, exc.message, **data) from exc


def _record_on_conversation(
    conversation_id: int, action: str, actor: Agent | None, data: dict[str, Any]
) -> None:
    """An ``order_action`` event on a conversation only (a dispute with no order)."""
    ConversationEvent.objects.create(
        conversation_id=conversation_id,
        kind=EventKind.ORDER_ACTION,
        actor=actor,
        data={"action": action, **data},
    )


def _emit(
    event: str, order: Order, conversation_ids: list[int], action: str, actor: Agent | None
) -> None:
    emit(
        event,
        order_id=order.pk,
        store_id=order.store_id,
        conversation_ids=conversation_ids,
        action=action,
        actor_id=actor.pk if actor else None,
    )


def _shipped(order: Order) -> bool:
    return order.fulfillment_status in (FulfillmentStatus.FULFILLED, FulfillmentStatus.PARTIAL)


def _amount(order: Order, amount: int) -> dict[str, Any]:
    """An amount for a timeline entry: minor units, and as people read it."""
    return {"amount": amount, "amount_display": money.format_money(amount, order.currency)}


def _add_refunded(order: Order, amount: int) -> None:
    """Count ``amount`` as refunded on the (locked) order and set its payment status."""
    order.refunded += amount
    order.payment_status = (
        PaymentStatus.REFUNDED
        if order.refunded >= order.total
        else PaymentStatus.PARTIALLY_REFUNDED
    )
    order.save(update_fields=["refunded", "payment_status", "updated_at"])


# --- sync from platforms ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineData:
    title: str
    quantity: int
    unit_price: int
    sku: str = ""
    external_id: str = ""
    refunded_quantity: int = 0


@dataclass(frozen=True, slots=True)
class OrderData:
    """A platform-neutral order snapshot (platform adapters build these from their payloads)."""

    external_id: str
    number: str
    currency: str
    placed_at: datetime
    total: int
    subtotal: int = 0
    shipping: int = 0
    tax: int = 0
    refunded: int = 0
    email: str = ""
    phone: str = ""
    payment_status: str = PaymentStatus.PENDING
    fulfillment_status: str = FulfillmentStatus.UNFULFILLED
    status: str = OrderStatus.OPEN
    shipping_address: dict = field(default_factory=dict)
    lines: Sequence[LineData] = ()
    raw: dict = field(default_factory=dict)
    # When the platform last changed the order: an older snapshot than the one kept is stale.
    changed_at: datetime | None = None


def _validate_snapshot(data: OrderData) -> str:
    currency = money.normalize_currency(data.currency)
    if not data.external_id or not data.number:
        raise InvalidInput("an order needs its platform id and number", field="external_id")
    amounts = [data.total, data.subtotal, data.shipping, data.tax, data.refunded]
    amounts += [line.unit_price for line in data.lines]
    if any(a < 0 or a > money.MAX_MINOR for a in amounts):
        raise InvalidInput("amounts must be between 0 and 10^15 minor units", field="total")
    if data.refunded > data.total:
        raise InvalidInput("an order cannot have refunded more than its total", field="refunded")
    for line in data.lines:
        if line.quantity < 0 or not 0 <= line.refunded_quantity <= line.quantity:
            raise InvalidInput("line quantities are inconsistent", field="lines")
    for name, choices in (
        ("payment_status", PaymentStatus),
        ("fulfillment_status", FulfillmentStatus),
        ("status", OrderStatus),
    ):
        if getattr(data, name) not in choices.values:
            raise InvalidInput(f"unknown {name}: {getattr(data, name)!r}", field=name)
    return currency


def _customer_for(store: Store, data: OrderData):  # type: ignore[no-untyped-def]
    """The customer owning the order's email or phone (created if none does); None without."""
    from kefu.customers.actions import resolve_customer
    from kefu.customers.identities import normalize

    refs = []
    for kind, value in (("email", data.email), ("phone", data.phone)):
        if value:
            try:
                refs.append(normalize(kind, value, default_region=store.country))
            except (ValueError, InvalidInput):
                continue  # a malformed contact field is not a reason to lose the order
    if not refs:
        return None
    return resolve_customer(identities=refs)


@transaction.atomic
def upsert_order(*, store: Store, data: OrderData) -> tuple[Order, bool]:
    """Create or update the order ``(store, data.external_id)`` from a platform snapshot.

    Lines are matched by their platform id (or replaced wholesale when the platform gives
    none). The customer is resolved from the order's email and phone. Returns (order, created).
    A snapshot older (``changed_at``) than the one kept changes nothing: a webhook retried late,
    or a reconciliation that read the order before a webhook brought a newer state.
    """
    currency = _validate_snapshot(data)
    fields = {
        "number": data.number[:64],
        "email": data.email[:254],
        "phone": data.phone[:32],
        "currency": currency,
        "subtotal": data.subtotal,
        "shipping": data.shipping,
        "tax": data.tax,
        "total": data.total,
        "refunded": data.refunded,
        "payment_status": data.payment_status,
        "fulfillment_status": data.fulfillment_status,
        "status": data.status,
        "placed_at": data.placed_at,
        "shipping_address": data.shipping_address,
        "raw": data.raw,
    }
    order = (
        Order.objects.select_for_update().filter(store=store, external_id=data.external_id).first()
    )
    if order is not None and _stale(order, data.changed_at):
        return order, False
    if data.changed_at is not None:
        fields["platform_updated_at"] = data.changed_at
    created = order is None
    changed: list[str] = []
    if order is None:
        customer = _customer_for(store, data)
        order = Order.objects.create(
            store=store, external_id=data.external_id, customer=customer, **fields
        )
    else:
        changed = [name for name, value in fields.items() if getattr(order, name) != value]
        for name in changed:
            setattr(order, name, fields[name])
        if order.customer_id is None:
            customer = _customer_for(store, data)
            if customer is not None:
                order.customer = customer
                changed.append("customer")
        if changed:
            order.save(update_fields=[*changed, "updated_at"])
    lines_changed = _sync_lines(order, data.lines)
    # A snapshot that only refreshes the raw payload is not news for the timeline or rules.
    news = sorted(set(changed) - {"raw", "platform_updated_at"}) + (
        ["lines"] if lines_changed else []
    )
    if created or news:
        kind = "created" if created else "synced"
        _record(order, kind, None, on_conversations=False, number=order.number, changes=news)
    if "payment_status" in changed and order.payment_status == PaymentStatus.FAILED:
        # An exception order: on the conversations too, so rules can tell the customer.
        _record(order, "payment_failed", None, event="order.exception")
    return order, created


def _stale(order: Order, changed_at: datetime | None) -> bool:
    kept = order.platform_updated_at
    return changed_at is not None and kept is not None and changed_at < kept


def _sync_lines(order: Order, lines: Sequence[LineData]) -> bool:
    """Make the order's lines match the snapshot; whether anything changed."""
    existing = {line.external_id: line for line in order.lines.all()}
    keyed = all(line.external_id for line in lines)
    if not keyed:
        if existing:
            order.lines.all().delete()
        existing = {}
    changed = False
    keep = []
    for data in lines:
        values = {
            "sku": data.sku[:128],
            "title": data.title[:300],
            "quantity": data.quantity,
            "unit_price": data.unit_price,
            "refunded_quantity": data.refunded_quantity,
        }
        line = existing.get(data.external_id) if keyed else None
        if line is None:
            line = OrderLine.objects.create(order=order, external_id=data.external_id, **values)
            changed = True
        else:
            # kefu's own refunds may be ahead of the platform's snapshot: never go back.
            values["refunded_quantity"] = max(line.refunded_quantity, data.refunded_quantity)
            if any(getattr(line, name) != value for name, value in values.items()):
                OrderLine.objects.filter(pk=line.pk).update(**values)
                changed = True
        keep.append(line.pk)
    stale = [line.pk for line in existing.values() if line.pk not in keep]
    if stale:
        OrderLine.objects.filter(pk__in=stale).delete()
        changed = True
    return changed


def _normalized_events(events: Sequence[dict]) -> list[dict]:
    out = []
    for item in events:
        status = item.get("status", "")
        if status not in ShipmentStatus.values:
            raise InvalidInput(f"unknown shipment status: {status!r}", field="events")
        out.append(
            {
                "at": str(item.get("at", "")),
                "status": status,
                "location": str(item.get("location", ""))[:200],
                "description": str(item.get("description", ""))[:500],
            }
        )
    return sorted(out, key=lambda e: e["at"])


@transaction.atomic
def upsert_shipment(
    *,
    order: Order,
    external_id: str,
    carrier: str,
    tracking_number: str,
    status: str,
    events: Sequence[dict] = (),
) -> Shipment:
    """Create or update a shipment of ``order``; its events are normalized and sorted by time."""
    if status not in ShipmentStatus.values:
        raise InvalidInput(f"unknown shipment status: {status!r}", field="status")
    clean = _normalized_events(events)
    tracking = tracking_number.replace(" ", "").upper()[:64]
    key = Q(external_id=external_id) if external_id else Q(tracking_number=tracking)
    shipment = Shipment.objects.select_for_update().filter(key, order=order).first()
    previous = shipment.status if shipment else None
    now = timezone.now()
    if shipment is None:
        shipment = Shipment.objects.create(
            order=order,
            external_id=external_id,
            carrier=carrier[:32],
            tracking_number=tracking,
            status=status,
            events=clean,
            moved_at=now,
        )
    else:
        if status != shipment.status or clean != shipment.events:
            shipment.moved_at, shipment.stalled_at = now, None
        shipment.carrier, shipment.tracking_number = carrier[:32], tracking
        shipment.status, shipment.events = status, clean
        shipment.save()
    if previous != status:
        # A carrier exception or a parcel coming back is news on the linked conversations.
        alarming = status in (ShipmentStatus.EXCEPTION, ShipmentStatus.RETURNED)
        _record(
            order,
            "shipment_status",
            None,
            on_conversations=alarming,
            event="shipment.exception" if alarming else "shipment.updated",
            shipment_id=shipment.pk,
            status=status,
            tracking_number=tracking,
        )
    return shipment


@transaction.atomic
def record_tracking(
    *, shipment: Shipment, update: TrackingUpdate, next_poll_at: datetime | None
) -> Shipment:
    """Write a tracking provider's view of ``shipment``: its status and events (merged with
    what the shipment had, through :func:`upsert_shipment`, so the timeline and the exception
    events are the same whatever the source), the provider's id, and when to poll it next.
    When the events moved, ``moved_at`` is the newest scan's time, so a parcel whose last scan
    is old counts as stalled from that scan, not from when kefu heard of it."""
    current = Shipment.objects.select_for_update().get(pk=shipment.pk)
    events = _merged_events(current.events, update.events)
    saved = upsert_shipment(
        order=current.order,
        external_id=current.external_id,
        carrier=current.carrier or update.carrier,
        tracking_number=current.tracking_number,
        status=update.status,
        events=events,
    )
    fields: dict[str, Any] = {
        "tracker_id": update.tracker_id[:128] or saved.tracker_id,
        "next_poll_at": next_poll_at,
        "poll_failures": 0,
        "tracker_error": "",
    }
    last_scan = _last_scan(saved.events)
    if last_scan is not None and saved.moved_at != current.moved_at:
        fields["moved_at"] = min(last_scan, saved.moved_at or last_scan)
    Shipment.objects.filter(pk=saved.pk).update(**fields)
    for name, value in fields.items():
        setattr(saved, name, value)
    return saved


def record_tracking_failure(*, shipment: Shipment, error: str, retry_at: datetime) -> None:
    """The provider could not tell (down, refused): keep everything, note why, try later."""
    Shipment.objects.filter(pk=shipment.pk).update(
        tracker_error=error[:500], next_poll_at=retry_at, poll_failures=F("poll_failures") + 1
    )


def _merged_events(known: Sequence[dict], reported: Sequence[dict]) -> list[dict]:
    seen = {(e.get("at"), e.get("status"), e.get("description")) for e in known}
    extra = [e for e in reported if (e["at"], e["status"], e["description"]) not in seen]
    return [*known, *extra]


def _last_scan(events: Sequence[dict]) -> datetime | None:
    times = [parse_datetime(str(e.get("at") or "")) for e in events]
    aware = [t for t in times if t is not None and t.tzinfo is not None]
    return max(aware) if aware else None


MOVING = (ShipmentStatus.LABEL_CREATED, ShipmentStatus.IN_TRANSIT)


def flag_stalled_shipments(*, now: datetime | None = None, days: int | None = None) -> list[int]:
    """Flag parcels with no tracking movement for ``days`` (settings.KEFU_TRACKING_STALL_DAYS,
    default 5): a ``shipment.exception`` event per parcel, once until it moves again. Returns
    the shipment ids flagged."""
    now = now or timezone.now()
    days = days if days is not None else getattr(settings, "KEFU_TRACKING_STALL_DAYS", 5)
    stale = Shipment.objects.filter(
        status__in=MOVING, stalled_at__isnull=True, moved_at__lt=now - timedelta(days=days)
    ).values_list("pk", flat=True)
    flagged = []
    for shipment_id in list(stale[:1000]):
        with transaction.atomic():
            shipment = (
                Shipment.objects.select_for_update()
                .select_related("order")
                .filter(pk=shipment_id, stalled_at__isnull=True)
                .first()
            )
            if shipment is None:
                continue
            shipment.stalled_at = now
            shipment.save(update_fields=["stalled_at"])
            _record(
                shipment.order,
                "shipment_stalled",
                None,
                event="shipment.exception",
                shipment_id=shipment.pk,
                tracking_number=shipment.tracking_number,
                days=days,
            )
            flagged.append(shipment.pk)
    return flagged


# --- linking ------------------------------------------------------------------------------------


@transaction.atomic
def link_order(*, conversation: Conversation, order: Order, actor: Agent | None) -> bool:
    """Link ``order`` to ``conversation``; False when it already was."""
    _, created = ConversationOrder.objects.get_or_create(conversation=conversation, order=order)
    if created:
        ConversationEvent.objects.create(
            conversation=conversation,
            kind=EventKind.ORDER_ACTION,
            actor=actor,
            data={"action": "linked", "order_id": order.pk, "order_number": order.number},
        )
        _emit("order.updated", order, [conversation.pk], "linked", actor)
    return created


def orders_mentioned(conversation: Conversation, text: str) -> list[Order]:
    """Stored orders that ``text`` names by order or tracking number, of the conversation's
    store or customer (never another shop's order that happens to share a number)."""
    numbers = find_order_numbers(text)
    tracking = [m.number for m in find_tracking_numbers(text)]
    if not numbers and not tracking:
        return []
    store_id = conversation.store_id or conversation.inbox.store_id
    owner = Q(customer_id=conversation.customer_id)
    if store_id:
        owner |= Q(store_id=store_id)
    named = Q()
    if numbers:
        written = set(numbers) | {f"#{n}" for n in numbers}
        named |= Q(number__in=written) | Q(external_id__in=written)
    if tracking:
        named |= Q(pk__in=Shipment.objects.filter(tracking_number__in=tracking).values("order"))
    return list(Order.objects.filter(owner, named).order_by("pk")[:20])


def link_mentioned_orders(*, conversation: Conversation, text: str) -> list[Order]:
    """Link every order ``text`` names to ``conversation``; the newly linked ones."""
    return [
        order
        for order in orders_mentioned(conversation, text)
        if link_order(conversation=conversation, order=order, actor=None)
    ]


# --- refunds ------------------------------------------------------------------------------------


def refund_limit(actor: Agent | None, currency: str) -> int | None:
    """The most ``actor`` may refund without approval, in minor units (None: no limit).

    System actors (rules, the bot) get the agent limit.
    """
    if actor is not None and actor.is_superuser:
        return None
    limits = getattr(settings, "KEFU_REFUND_LIMITS", DEFAULT_REFUND_LIMITS)
    role = actor.role if actor is not None else Role.AGENT
    limit = limits.get(role, limits.get(Role.AGENT))
    return None if limit is None else money.to_minor(limit, currency)


@dataclass(frozen=True, slots=True)
class RefundLine:
    line_id: int
    quantity: int


def _refund_lines(order: Order, lines: Sequence[RefundLine]) -> tuple[int, list[dict]]:
    by_id = {line.pk: line for line in order.lines.all()}
    amount, chosen = 0, []
    seen: set[int] = set()
    for item in lines:
        line = by_id.get(item.line_id)
        if line is None or item.line_id in seen:
            raise InvalidInput(f"line {item.line_id} is not on this order", field="lines")
        seen.add(item.line_id)
        left = line.quantity - line.refunded_quantity
        if not 0 < item.quantity <= left:
            raise InvalidInput(
                f"line {line.title!r}: {left} left to refund, asked {item.quantity}",
                field="lines",
            )
        value = money.line_refund_amount(unit_price=line.unit_price, quantity=item.quantity)
        amount += value
        chosen.append({"line_id": line.pk, "quantity": item.quantity, "amount": value})
    return amount, chosen


@_traces_refusals
@transaction.atomic
def refund_order(
    *,
    order: Order,
    actor: Agent | None,
    lines: Sequence[RefundLine] = (),
    amount: int | None = None,
    reason: str = "",
    conversation: Conversation | None = None,
) -> Refund:
    """Refund ``order``: the given ``lines``, or ``amount``, or (neither) all that is left.

    Never refunds more than was paid (:func:`money.check_refund`). Above the actor's refund limit
    the refund waits for a lead's approval (:func:`approve_refund`) and nothing is sent to the
    platform. Otherwise the platform carries it out first; if it refuses, nothing is written
    but a ``refund_failed`` order event, and :class:`Conflict` carries its message.
    """
    order = _locked(order)
    if order.payment_status not in REFUNDABLE_PAYMENTS:
        raise Conflict(f"the order's payment is {order.get_payment_status_display()}")
    chosen: list[dict] = []
    if lines:
        total, chosen = _refund_lines(order, lines)
        if amount is not None and amount != total:
            raise InvalidInput("give either lines or an amount, not both", field="amount")
        amount = total
    elif amount is None:
        amount = money.refundable(paid=order.total, refunded=order.refunded)
    money.check_refund(amount=amount, paid=order.total, refunded=order.refunded)
    refund = Refund(
        order=order,
        amount=amount,
        lines=chosen,
        reason=reason[:300],
        created_by=actor,
        conversation=conversation,
    )
    limit = refund_limit(actor, order.currency)
    if limit is not None and amount > limit:
        refund.status = RefundStatus.PENDING_APPROVAL
        refund.save()
        _record(
            order,
            "refund_requested",
            actor,
            conversation=conversation,
            refund_id=refund.pk,
            **_amount(order, amount),
            limit=limit,
        )
        return refund
    return _carry_out(order, refund, actor, conversation)


def _carry_out(
    order: Order, refund: Refund, actor: Agent | None, conversation: Conversation | None
) -> Refund:
    refund.external_id = _on_platform(
        order,
        "refund_failed",
        actor,
        lambda gateway: gateway.refund(order=order, refund=refund),
        amount=refund.amount,
    )
    refund.status = RefundStatus.SUCCEEDED
    refund.save()
    for item in refund.lines:
        line = OrderLine.objects.get(pk=item["line_id"])
        line.refunded_quantity += item["quantity"]
        line.save(update_fields=["refunded_quantity"])
    _add_refunded(order, refund.amount)
    _record(
        order,
        "refunded",
        actor,
        conversation=conversation or refund.conversation,
        refund_id=refund.pk,
        **_amount(order, refund.amount),
        lines=refund.lines,
    )
    return refund


def _require_lead(actor: Agent) -> None:
    if not (actor.is_superuser or actor.role in (Role.LEAD, Role.ADMIN)):
        raise Forbidden("only a team lead or an admin can decide on a refund above the limit")


@_traces_refusals
@transaction.atomic
def approve_refund(*, refund: Refund, actor: Agent) -> Refund:
    """A lead approves a refund waiting above the limit: the platform carries it out now."""
    _require_lead(actor)
    refund = Refund.objects.select_for_update().get(pk=refund.pk)
    if refund.status != RefundStatus.PENDING_APPROVAL:
        raise Conflict("this refund is not waiting for approval")
    order = _locked(refund.order)
    money.check_refund(amount=refund.amount, paid=order.total, refunded=order.refunded)
    lines = [RefundLine(line_id=i["line_id"], quantity=i["quantity"]) for i in refund.lines]
    if lines:
        _refund_lines(order, lines)  # still refundable: nothing refunded them meanwhile
    refund.decided_by = actor
    return _carry_out(order, refund, actor, refund.conversation)


@transaction.atomic
def reject_refund(*, refund: Refund, actor: Agent, reason: str = "") -> Refund:
    _require_lead(actor)
    refund = Refund.objects.select_for_update().get(pk=refund.pk)
    if refund.status != RefundStatus.PENDING_APPROVAL:
        raise Conflict("this refund is not waiting for approval")
    refund.status, refund.decided_by, refund.error = RefundStatus.REJECTED, actor, reason[:500]
    refund.save(update_fields=["status", "decided_by", "error"])
    _record(
        refund.order,
        "refund_rejected",
        actor,
        conversation=refund.conversation,
        refund_id=refund.pk,
        amount=refund.amount,
    )
    return refund


# --- cancel -------------------------------------------------------------------------------------


@_traces_refusals
@transaction.atomic
def cancel_order(
    *, order: Order, actor: Agent | None, reason: str = "", conversation: Conversation | None = None
) -> Order:
    """Cancel an open, unfulfilled order on the platform, then here."""
    order = _locked(order)
    if order.status == OrderStatus.CANCELLED:
        raise Conflict("the order is already cancelled")
    if order.status == OrderStatus.CLOSED or _shipped(order):
        raise Conflict("a shipped or closed order cannot be cancelled; create a return instead")
    _on_platform(
        order, "cancel_failed", actor, lambda gateway: gateway.cancel(order=order, reason=reason)
    )
    order.status = OrderStatus.CANCELLED
    order.save(update_fields=["status", "updated_at"])
    _record(order, "cancelled", actor, conversation=conversation, reason=reason[:300])
    return order


# --- shipping address ----------------------------------------------------------------------------

ADDRESS_FIELDS = (
    "first_name", "last_name", "address1", "address2", "city", "province", "zip",
    "country_code", "phone",
)  # fmt: skip
ADDRESS_REQUIRED = ("address1", "city", "country_code")


def _clean_address(address: dict[str, str]) -> dict[str, str]:
    unknown = set(address) - set(ADDRESS_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown address fields: {', '.join(sorted(unknown))}", field="address")
    clean = {k: str(v).strip()[:200] for k, v in address.items() if str(v).strip()}
    for name in ADDRESS_REQUIRED:
        if not clean.get(name):
            raise InvalidInput(f"the address needs {name}", field=name)
    code = clean["country_code"].upper()
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        raise InvalidInput("country_code is a 2-letter ISO code", field="country_code")
    clean["country_code"] = code
    return clean


@_traces_refusals
@transaction.atomic
def update_shipping_address(
    *,
    order: Order,
    actor: Agent | None,
    address: dict[str, str],
    conversation: Conversation | None = None,
) -> Order:
    """Change where an unshipped order goes: on the platform first, then here."""
    clean = _clean_address(address)
    order = _locked(order)
    if order.status != OrderStatus.OPEN or _shipped(order):
        raise Conflict("the address of a shipped, cancelled or closed order cannot change")
    _on_platform(
        order,
        "address_failed",
        actor,
        lambda gateway: gateway.update_shipping_address(order=order, address=clean),
    )
    previous = order.shipping_address
    order.shipping_address = {**previous, **clean}
    order.save(update_fields=["shipping_address", "updated_at"])
    _record(
        order,
        "address_changed",
        actor,
        conversation=conversation,
        city=clean["city"],
        country_code=clean["country_code"],
    )
    return order


# --- returns ------------------------------------------------------------------------------------


@transaction.atomic
def create_return(
    *,
    order: Order,
    actor: Agent | None,
    lines: Sequence[RefundLine],
    reason: str,
    condition: str = "",
    label_url: str = "",
    conversation: Conversation | None = None,
) -> ReturnRequest:
    """Open a return (RMA) for some of the order's delivered or shipped lines."""
    order = _locked(order)
    if not lines:
        raise InvalidInput("choose the lines to return", field="lines")
    if not reason.strip():
        raise InvalidInput("a return needs a reason", field="reason")
    by_id = {line.pk: line for line in order.lines.all()}
    chosen = []
    for item in lines:
        line = by_id.get(item.line_id)
        if line is None or not 0 < item.quantity <= line.quantity:
            raise InvalidInput(f"line {item.line_id}: nothing to return", field="lines")
        chosen.append({"line_id": line.pk, "quantity": item.quantity})
    if label_url and not label_url.startswith("https://"):
        raise InvalidInput("a return label link must be https", field="label_url")
    rma = ReturnRequest.objects.create(
        order=order,
        reason=reason.strip()[:300],
        lines=chosen,
        condition=condition[:100],
        label_url=label_url,
        created_by=actor,
    )
    _record(order, "return_created", actor, conversation=conversation, return_id=rma.pk)
    return rma


@transaction.atomic
def advance_return(
    *,
    rma: ReturnRequest,
    actor: Agent | None,
    status: str,
    label_url: str = "",
    conversation: Conversation | None = None,
) -> ReturnRequest:
    """Move a return along requested → approved|rejected → label_sent → received →
    refunded|exchanged → closed. Sending the label needs its https link."""
    rma = ReturnRequest.objects.select_for_update().select_related("order").get(pk=rma.pk)
    if status not in RETURN_TRANSITIONS.get(rma.status, frozenset()):
        raise Conflict(f"a return cannot go from {rma.status} to {status}")
    if status == ReturnStatus.LABEL_SENT:
        label_url = label_url or rma.label_url
        if not label_url.startswith("https://"):
            raise InvalidInput("sending the label needs its https link", field="label_url")
        rma.label_url = label_url
    previous, rma.status = rma.status, status
    rma.save(update_fields=["status", "label_url", "updated_at"])
    _record(
        rma.order,
        "return_status",
        actor,
        conversation=conversation,
        return_id=rma.pk,
        previous=previous,
        status=status,
    )
    return rma


# --- disputes -----------------------------------------------------------------------------------


@transaction.atomic
def open_dispute(
    *,
    kind: str,
    actor: Agent | None,
    summary: str,
    order: Order | None = None,
    conversation: Conversation | None = None,
    at: datetime | None = None,
) -> Dispute:
    """Log a complaint or claim; first contact is due 24 hours after it was opened."""
    if kind not in DisputeKind.values:
        raise InvalidInput(f"unknown dispute kind: {kind!r}", field="kind")
    if order is None and conversation is None:
        raise InvalidInput("a dispute concerns an order or a conversation", field="order")
    opened = at or timezone.now()
    dispute = Dispute.objects.create(
        order=order,
        conversation=conversation,
        kind=kind,
        summary=summary.strip()[:500],
        opened_at=opened,
        first_contact_due_at=opened + FIRST_CONTACT_WITHIN,
        created_by=actor,
    )
    data: dict[str, Any] = {"dispute_id": dispute.pk, "dispute_kind": kind}
    if order is not None:
        _record(order, "dispute_opened", actor, conversation=conversation, **data)
    else:
        assert conversation is not None
        _record_on_conversation(conversation.pk, "dispute_opened", actor, data)
    return dispute


@transaction.atomic
def record_first_contact(
    *, dispute: Dispute, actor: Agent | None, at: datetime | None = None
) -> Dispute:
    return advance_dispute(dispute=dispute, actor=actor, status=DisputeStatus.FIRST_CONTACT, at=at)


@transaction.atomic
def advance_dispute(
    *,
    dispute: Dispute,
    actor: Agent | None,
    status: str,
    resolution: str = "",
    at: datetime | None = None,
) -> Dispute:
    """Move a dispute one step forward; resolving it names how (repair, replace, refund,
    mediated)."""
    dispute = Dispute.objects.select_for_update().get(pk=dispute.pk)
    current = DISPUTE_ORDER.index(dispute.status)
    if status not in DISPUTE_ORDER or DISPUTE_ORDER.index(status) != current + 1:
        raise Conflict(f"a dispute cannot go from {dispute.status} to {status}")
    if status == DisputeStatus.RESOLVED:
        if resolution not in RESOLUTIONS:
            raise InvalidInput(
                f"resolution must be one of {', '.join(RESOLUTIONS)}", field="resolution"
            )
        dispute.resolution = resolution
    if status == DisputeStatus.FIRST_CONTACT:
        dispute.first_contact_at = at or timezone.now()
    dispute.status = status
    dispute.save()
    data: dict[str, Any] = {
        "dispute_id": dispute.pk,
        "status": status,
        "resolution": dispute.resolution,
    }
    if dispute.order is not None:
        _record(dispute.order, "dispute_status", actor, conversation=dispute.conversation, **data)
    elif dispute.conversation_id is not None:
        _record_on_conversation(dispute.conversation_id, "dispute_status", actor, data)
    return dispute


# --- what platforms report ----------------------------------------------------------------------


@transaction.atomic
def record_platform_refund(
    *, order: Order, external_id: str, amount: int, lines: Sequence[RefundLine] = ()
) -> Refund | None:
    """A refund made on the platform (its webhook). None when kefu already knows it (kefu made
    it, or the webhook came twice). Totals stay within what was paid: an amount that would pass
    it is clamped to what is left and the difference noted on the order timeline."""
    order = _locked(order)
    if Refund.objects.filter(order=order, external_id=external_id).exists():
        return None
    left = money.refundable(paid=order.total, refunded=order.refunded)
    applied = min(amount, left)
    chosen = []
    by_id = {line.pk: line for line in order.lines.all()}
    for item in lines:
        line = by_id.get(item.line_id)
        if line is None:
            continue
        quantity = min(item.quantity, line.quantity - line.refunded_quantity)
        if quantity > 0:
            line.refunded_quantity += quantity
            line.save(update_fields=["refunded_quantity"])
            chosen.append({"line_id": line.pk, "quantity": quantity})
    if applied <= 0:
        _record(order, "refund_ignored", None, on_conversations=False, external_id=external_id)
        return None
    refund = Refund.objects.create(
        order=order,
        amount=applied,
        lines=chosen,
        status=RefundStatus.SUCCEEDED,
        external_id=external_id,
        reason="platform",
    )
    _add_refunded(order, applied)
    _record(
        order,
        "refunded",
        None,
        refund_id=refund.pk,
        **_amount(order, applied),
        clamped_from=amount if applied != amount else None,
        source="platform",
    )
    return refund


@transaction.atomic
def redact_orders(*, store: Store, external_ids: Sequence[str] | None) -> int:
    """Erase the personal data of the store's orders (all of them when ``external_ids`` is None):
    contact fields, address and the raw payload. Amounts and lines stay for the accounts."""
    orders = Order.objects.filter(store=store)
    if external_ids is not None:
        orders = orders.filter(external_id__in=list(external_ids))
    count = orders.update(email="", phone="", shipping_address={}, raw={}, customer=None)
    return count
