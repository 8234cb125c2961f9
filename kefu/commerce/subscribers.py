"""Inbound-pipeline hooks of the commerce app (registered in apps.CommerceConfig.ready)."""

from __future__ import annotations

import logging
import threading
import time

from django.db import close_old_connections, connection, transaction
from django.db.models import Q

from kefu.commerce import actions
from kefu.commerce.carriers import find_order_numbers, find_tracking_numbers
from kefu.commerce.models import Order, Shipment
from kefu.conversations.models import Conversation
from kefu.conversations.pipeline import on_inbound_prepared, on_inbound_stored

logger = logging.getLogger(__name__)

# Linking the orders a message names runs off the ingest path. The text is read for order and
# tracking numbers while the message is prepared (in the request's thread, outside the storing
# transaction, like the search analysis), and only messages naming one are handed, after commit,
# to a thread of this process that links them every LINK_DELAY. Linked inline in the request it
# cost ~3.7 ms per message (bench/ingest.py fell from ~1,000 to ~130 messages/s in process);
# reading each committed message back to scan it was a tenth of the batch path's CPU. Inside a
# transaction (a caller's atomic block, a test) it runs at once instead. Linking is a
# convenience (the panel also lists the customer's recent orders), so a crash that loses
# pending links loses no data.
LINK_DELAY = 0.25
_MENTIONS = "order_mentions"

# (message id, conversation id, order numbers as written, tracking numbers)
Mention = tuple[int, int, set[str], set[str]]


class _Pending:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.mentions: dict[int, Mention] = {}
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None


_pending = _Pending()


@on_inbound_prepared
def _read_mentions(prepared) -> None:  # type: ignore[no-untyped-def]
    written, tracking = named_in(f"{prepared.inbound.subject[:300]}\n{prepared.text}")
    if written or tracking:
        prepared.extras[_MENTIONS] = (written, tracking)


@on_inbound_stored
def _link_after_commit(stored) -> None:  # type: ignore[no-untyped-def]
    mentions = [
        (message.pk, conversation.pk, *prepared.extras[_MENTIONS])
        for message, conversation, _, prepared in stored
        if _MENTIONS in prepared.extras
    ]
    if mentions:
        transaction.on_commit(lambda: link_soon(mentions), robust=True)


def link_soon(mentions: list[Mention]) -> None:
    """Link these committed messages' orders: now inside a transaction, else in the thread."""
    if LINK_DELAY <= 0 or connection.in_atomic_block:
        link_mentions(mentions)
        return
    with _pending.lock:
        _pending.mentions.update((mention[0], mention) for mention in mentions)
        if _pending.thread is None or not _pending.thread.is_alive():
            _pending.thread = threading.Thread(target=_run, name="kefu-order-links", daemon=True)
            _pending.thread.start()
    _pending.wake.set()


def named_in(text: str) -> tuple[set[str], set[str]]:
    """(order numbers as they may be written, tracking numbers) that ``text`` names."""
    numbers = find_order_numbers(text)
    written = set(numbers) | {f"#{n}" for n in numbers}
    return written, {m.number for m in find_tracking_numbers(text)}


def link_mentions(mentions: list[Mention]) -> int:
    """Link the orders ``mentions`` name to their conversations; returns how many links were made.

    Three queries for the whole batch whatever its size (their conversations, the shipments,
    the candidate orders); the same rules as ``actions.orders_mentioned`` (an order of the
    conversation's store or customer).
    """
    if not mentions:
        return 0
    conversations = Conversation.objects.select_related("inbox").in_bulk(
        {conversation_id for _, conversation_id, _, _ in mentions}
    )
    wanted = [
        (conversations[conversation_id], written, tracking)
        for _, conversation_id, written, tracking in mentions
        if conversation_id in conversations
    ]
    if not wanted:
        return 0
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
            mentions = [_pending.mentions[key] for key in sorted(_pending.mentions)]
            _pending.mentions = {}
        if not mentions:
            continue
        try:
            close_old_connections()
            link_mentions(mentions)
        except Exception:
            logger.exception("linking orders named in %d messages failed", len(mentions))
        finally:
            # Idle until the next message: hold no database session meanwhile.
            if not _pending.mentions:
                connection.close()
