"""Domain-event subscribers of the commerce app (registered in apps.CommerceConfig.ready)."""

from __future__ import annotations

import logging
import threading
import time

from django.db import close_old_connections, connection

from kefu.commerce import actions
from kefu.conversations.models import Direction, Message
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
    """Link the orders these inbound messages name; returns how many links were made."""
    messages = Message.objects.select_related("conversation__inbox").filter(
        pk__in=message_ids, direction=Direction.INBOUND
    )
    linked = 0
    for message in messages:
        if message.conversation is None:
            continue
        text = f"{message.subject}\n{message.text}"
        linked += len(actions.link_mentioned_orders(conversation=message.conversation, text=text))
    return linked


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
            close_old_connections()
