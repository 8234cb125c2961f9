"""Delivered and read marks reported by the widget for the agents' replies."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from kefu.connectors.chat.visitors import thread_key
from kefu.conversations.actions import record_provider_status
from kefu.conversations.models import DeliveryStatus, Direction, Message

RECEIPT_STATES = (DeliveryStatus.DELIVERED, DeliveryStatus.READ)


def mark_by_visitor(*, inbox_id: int, visitor: str, up_to: int, status: str) -> int:
    """Mark the visitor's replies up to message ``up_to`` delivered or read; returns how many
    changed. Only the visitor's own conversations, and only replies kefu has sent (a reply the
    worker has not handed over yet keeps its state; the next receipt covers it)."""
    if status not in RECEIPT_STATES:
        return 0
    below = DeliveryStatus.SENT if status == DeliveryStatus.DELIVERED else DeliveryStatus.DELIVERED
    waiting: list[str] = [
        provider_id
        for provider_id in Message.objects.filter(
            inbox_id=inbox_id,
            conversation__thread_key=thread_key(visitor),
            direction=Direction.OUTBOUND,
            pk__lte=up_to,
            delivery_status__in=[DeliveryStatus.SENT, below],
            external_id__isnull=False,
        ).values_list("external_id", flat=True)[:500]
        if provider_id
    ]
    now = timezone.now()
    with transaction.atomic():
        for provider_id in waiting:
            record_provider_status(
                inbox_id=inbox_id, provider_id=provider_id, status=status, at=now
            )
    return len(waiting)
