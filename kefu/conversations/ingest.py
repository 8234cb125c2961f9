"""From API payloads to the pipeline: single messages and batches."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, timedelta

from django.utils import timezone

from kefu.conversations import batch
from kefu.conversations.inbound import InboundMessage
from kefu.conversations.models import Inbox
from kefu.conversations.schemas import InboundIn

# A provider clock a little ahead of ours is normal; a date far in the future is not trusted.
MAX_CLOCK_SKEW = timedelta(minutes=5)


def to_inbound(payload: InboundIn) -> InboundMessage:
    customer = payload.customer
    identities: list[tuple[str, str]] = []
    if customer.email:
        identities.append(("email", customer.email))
    if customer.phone:
        identities.append(("phone", customer.phone))
    if customer.external_id:
        identities.append(("external", customer.external_id))
    sent_at = payload.sent_at
    if sent_at is not None:
        if timezone.is_naive(sent_at):
            sent_at = timezone.make_aware(sent_at, UTC)
        sent_at = min(sent_at, timezone.now() + MAX_CLOCK_SKEW)
    return InboundMessage(
        external_id=payload.external_id,
        identities=identities,
        text=payload.text,
        html=payload.html,
        subject=payload.subject,
        customer_name=customer.name,
        sent_at=sent_at,
        references=payload.references,
        thread_key=payload.thread_key,
    )


def receive_batch(items: Sequence[InboundIn], inboxes: dict[int, Inbox | str]) -> list[dict]:
    """Receive API batch items through the bulk pipeline; one result per item, in order."""
    return batch.receive_batch([(inboxes[item.inbox_id], to_inbound(item)) for item in items])
