"""Background work for conversations: delivering queued replies through their connector.

``reply()`` emits ``message.queued``; after commit, :func:`enqueue_delivery` enqueues
:func:`deliver_message`. The task claims the message (QUEUED -> SENDING in one conditional
update, so two workers never send it twice), calls the inbox kind's sender, and records the
outcome through actions: sent, retried later with exponential backoff, or failed visibly.

Delivery is at most once per claim: a worker killed while talking to the provider leaves the
message in SENDING rather than risk sending it twice; :func:`recover_deliveries`
(run when a worker starts) marks such messages failed, visibly.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.utils import timezone
from django_tasks import task

from kefu.connectors.base import ConnectorError, get_sender
from kefu.conversations import actions
from kefu.conversations.models import DeliveryStatus, Direction, Message
from kefu.core.events import DomainEvent, subscribe

logger = logging.getLogger(__name__)

# Attempt n waits BACKOFF_SECONDS * 4**(n-1) before attempt n+1: 30 s, 2 min, 8 min, 32 min,
# then about 2 h, so a provider outage of a few hours is ridden out before giving up.
MAX_ATTEMPTS = 6
BACKOFF_SECONDS = 30
MAX_BACKOFF = timedelta(hours=3)
# A send takes seconds (kefu.core.http times out at 15 s); a claim this old belongs to a worker
# that died mid-send.
INTERRUPTED_AFTER = timedelta(minutes=15)


def backoff(attempt: int) -> timedelta:
    """How long to wait after failed attempt number ``attempt`` (1-based)."""
    return min(timedelta(seconds=BACKOFF_SECONDS * 4 ** (attempt - 1)), MAX_BACKOFF)


@subscribe("message.queued")
def enqueue_delivery(event: DomainEvent) -> None:
    """Runs after the reply committed, so the worker always finds the message."""
    deliver_message.enqueue(event.payload["message_id"])


@task()
def deliver_message(message_id: int, attempt: int = 1) -> str:
    """Send one queued outbound message; returns "sent", "retrying", "failed" or "skipped".

    "skipped": nothing to do (another worker has it, or it was already sent or failed).
    """
    message = actions.claim_delivery(message_id=message_id)
    if message is None:
        return "skipped"
    try:
        result = get_sender(message.inbox.kind)(message)
    except ConnectorError as exc:
        return _handle_failure(message, exc.message, attempt, permanent=exc.permanent)
    except Exception as exc:
        # A bug or an unexpected provider answer: retry like a transient failure, loudly.
        logger.exception("sending message %s failed unexpectedly", message_id)
        return _handle_failure(message, f"{type(exc).__name__}: {exc}", attempt, permanent=False)
    actions.mark_delivery_sent(
        message=message, provider_id=result.provider_id, status=result.status, attempt=attempt
    )
    return "sent"


def _handle_failure(message: Message, error: str, attempt: int, *, permanent: bool) -> str:
    if permanent or attempt >= MAX_ATTEMPTS:
        actions.mark_delivery_failed(message=message, error=error, attempt=attempt)
        return "failed"
    retry_at = timezone.now() + backoff(attempt)
    actions.retry_delivery(message=message, error=error, attempt=attempt, retry_at=retry_at)
    _schedule(message.pk, attempt + 1, retry_at)
    return "retrying"


def recover_deliveries() -> dict[str, list[int]]:
    """Clean up after workers and queues that lost work; run when a worker starts.

    - "failed": messages whose worker died mid-send, failed visibly (never resent: the customer
      may have them already);
    - "requeued": queued messages no task seems to hold (an enqueue that failed while Redis was
      down, a lost queue), enqueued again; the claim makes a duplicate task harmless.
    """
    stale = timezone.now() - INTERRUPTED_AFTER
    failed = actions.fail_interrupted_deliveries(claimed_before=stale)
    requeued = []
    waiting = Message.objects.filter(
        direction=Direction.OUTBOUND, delivery_status=DeliveryStatus.QUEUED, created_at__lt=stale
    ).only("pk", "metadata")
    for message in waiting:
        delivery = message.metadata.get("delivery", {})
        next_attempt = delivery.get("next_attempt_at")
        if next_attempt and datetime.fromisoformat(next_attempt) >= stale:
            continue  # a retry is scheduled, or only just due
        deliver_message.enqueue(message.pk, int(delivery.get("attempts", 0)) + 1)
        requeued.append(message.pk)
    if failed or requeued:
        logger.warning("deliveries recovered: failed %s, requeued %s", failed, requeued)
    return {"failed": failed, "requeued": requeued}


def _schedule(message_id: int, attempt: int, run_after: datetime) -> None:
    """Enqueue the next attempt; backends without deferral (immediate, in tests) retry at once."""
    if deliver_message.get_backend().supports_defer:
        deliver_message.using(run_after=run_after).enqueue(message_id, attempt)
    else:
        deliver_message.enqueue(message_id, attempt)
