"""Domain-event subscribers of the commerce app (registered in apps.CommerceConfig.ready)."""

from __future__ import annotations

import logging
import threading
import time

from django.db import close_old_connections, connection
from django.db.models import Q

from kefu.commerce import actions
from kefu.commerce.carriers import find_order_numbers, find_tracking_numbers
from kefu.commerce.models import Order, Shipment
from kefu.conversations.models import Conversation, Direction, Message
from kefu.core.events import DomainEvent, subscribe

logger = logging.getLogger(__name__)

# Linking the orders a message names runs off the ingest path: the ids of committed messages
# are collected and a thread of this process links them every LINK_DELAY, loading the batch's
# messages in one query. Done inline in the request it cost ~3.7 ms per message (bench/ingest.py
# fell from ~1,000 to ~130 messages/s in process). Inside a transaction (a caller's atomic block,
# a test) it runs at once instead. Linking is a convenience (the panel also lists the customer's
# recent orders), so a crash that loses pending ids loses no data.
LINK_DELAY = 0.25


class _Pending:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: set[int] = set()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None


_pending = _Pending()


@subscribe("message.received")
def link_orders_in_message(event: DomainEvent) -> None:
    """Link the orders an inbound message names (order or tracking number) to its conversation."""
    message_id = event.payload.get("message_id")
    if not isinstance(message_id, int):
        return
    if LINK_DELAY <= 0 or connection.in_atomic_block:
        link_messages([message_id])
        return
    with _pending.lock:
        _pending.ids.add(message_id)
        if _pending.thread is None or not _pending.thread.is_alive():
            _pending.thread = threading.Thread(target=_run, name="kefu-order-links", daemon=True)
            _pending.thread.start()
    _pending.wake.set()


def link_messages(message_ids: list[int]) -> int:
    """Link the orders these inbound messages name; returns how many links were made.

    One query for the whole batch whatever its size when no message names an order or
    tracking number, four when some do (the messages, their conversations, the shipments, the
    candidate orders); the same rules as ``actions.orders_mentioned`` (an order of the
    conversation's store or customer).
    """
    mentions = _mentions(message_ids)
    if not mentions:
        return 0
    conversations = Conversation.objects.select_related("inbox").in_bulk(
        {conversation_id for conversation_id, _, _ in mentions}
    )
    wanted = [
        (conversations[conversation_id], written, tracking)
        for conversation_id, written, tracking in mentions
    ]
    orders, tracked = _candidates(wanted)
    linked = 0
    for conversation, written, tracking in wanted:
        store_id = conversation.store_id or conversation.inbox.store_id
        for order in orders:
            owned = order.customer_id == conversation.customer_id or order.store_id == store_id
            named = order.number in written or order.external_id in written
            if owned and (named or tracked.get(order.pk, set()) & tracking):
                linked += actions.link_order(conversation=conversation, order=order, actor=None)
    return linked


def _mentions(message_ids: list[int]) -> list[tuple[int, set[str], set[str]]]:
    """(conversation id, order numbers as written, tracking numbers) of each inbound message
    naming any.

    From plain rows, not model instances: most messages name nothing, and building a message,
    its conversation and its inbox for each was most of this thread's time (a third of the CPU
    of the request that stored them, on the batch path).
    """
    mentions = []
    rows = Message.objects.filter(pk__in=message_ids, direction=Direction.INBOUND).values_list(
        "conversation_id", "subject", "text"
    )
    for conversation_id, subject, body in rows:
        text = f"{subject}\n{body}"
        numbers = find_order_numbers(text)
        written = set(numbers) | {f"#{n}" for n in numbers}
        tracking = {m.number for m in find_tracking_numbers(text)}
        if written or tracking:
            mentions.append((conversation_id, written, tracking))
    return mentions


def _candidates(wanted: list) -> tuple[list[Order], dict[int, set[str]]]:
    written = set().union(*(w for _, w, _ in wanted))
    tracking = set().union(*(t for _, _, t in wanted))
    stores = {c.store_id or c.inbox.store_id for c, _, _ in wanted} - {None}
    customers = {c.customer_id for c, _, _ in wanted}
    tracked: dict[int, set[str]] = {}
    for order_id, number in Shipment.objects.filter(tracking_number__in=tracking).values_list(
        "order_id", "tracking_number"
    ):
        tracked.setdefault(order_id, set()).add(number)
    named = Q(number__in=written) | Q(external_id__in=written) | Q(pk__in=tracked)
    owners = Q(store_id__in=stores) | Q(customer_id__in=customers)
    return list(Order.objects.filter(owners, named)[:500]), tracked


def _run() -> None:
    while True:
        _pending.wake.wait()
        time.sleep(LINK_DELAY)
        _pending.wake.clear()
        with _pending.lock:
            ids, _pending.ids = sorted(_pending.ids), set()
        if not ids:
            continue
        try:
            close_old_connections()
            link_messages(ids)
        except Exception:
            logger.exception("linking orders named in %d messages failed", len(ids))
        finally:
            # Idle until the next message: hold no database session meanwhile.
            if not _pending.ids:
                connection.close()
