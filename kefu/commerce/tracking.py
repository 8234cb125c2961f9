"""Shipment tracking through a provider account (:class:`TrackingAccount`; AfterShip today).

Two ways in, one way to write (``actions.record_tracking``, so the shipment's status, events,
timeline and ``shipment.exception`` events are the same whichever way an update came):

- **Webhooks** ``POST /commerce/webhooks/aftership``: verified with the account's webhook
  secret, stored and acknowledged like the store platforms' (:mod:`kefu.commerce.webhooks`);
  the drain applies each update to every shipment with that provider id or tracking number and
  moves its next poll ``POLL_INTERVAL`` away (a parcel that pushes is not polled as well).
- **Polling** (:func:`poll`, from the commerce tick): shipments with a tracking number, not
  delivered or returned, created in the last ``FOLLOW_DAYS`` days, whose next poll is due, are
  registered with the provider (the first time) or fetched. A transient failure (provider down,
  rate limited) keeps everything, records the error, backs the shipment off (``backoff``) and
  ends the pass, leaving the rest due for the next tick; a permanent refusal (an unknown
  number) is retried at the slow pace of ``REFUSED_RETRY``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from kefu.commerce import actions, webhooks
from kefu.commerce.carriers.aftership import SIGNATURE_HEADER, AfterShip
from kefu.commerce.carriers.providers import TrackingError, TrackingProvider
from kefu.commerce.models import Shipment, ShipmentStatus, TrackingAccount, TrackingProviderName

logger = logging.getLogger(__name__)

BATCH = 50
FOLLOW_DAYS = 60
FINAL = (ShipmentStatus.DELIVERED, ShipmentStatus.RETURNED)
BACKOFF_SECONDS = 60
MAX_BACKOFF = timedelta(hours=6)
REFUSED_RETRY = timedelta(days=1)


def poll_interval() -> timedelta:
    return timedelta(hours=getattr(settings, "KEFU_TRACKING_POLL_HOURS", 4))


def backoff(failures: int) -> timedelta:
    """The wait after ``failures`` transient failures in a row: 1, 4, 16 min... up to 6 h."""
    return min(timedelta(seconds=BACKOFF_SECONDS * 4 ** max(failures - 1, 0)), MAX_BACKOFF)


def account() -> TrackingAccount | None:
    found = TrackingAccount.objects.filter(active=True, provider=TrackingProviderName.AFTERSHIP)
    row = found.first()
    return row if row is not None and row.api_key else None


def provider() -> TrackingProvider | None:
    row = account()
    return AfterShip(row) if row is not None else None


# --- polling -------------------------------------------------------------------------------------


def due(now: datetime) -> Any:
    """Shipments to ask the provider about now, the longest waiting first."""
    return (
        Shipment.objects.exclude(tracking_number="")
        .exclude(status__in=FINAL)
        .filter(created_at__gte=now - timedelta(days=FOLLOW_DAYS))
        .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))
        .select_related("order")
        .order_by(F("next_poll_at").asc(nulls_first=True), "pk")
    )


def poll(*, now: datetime | None = None, limit: int = BATCH) -> dict[str, int]:
    """One polling pass; counts of shipments updated, failed, and whether the pass stopped
    early because the provider is down."""
    tracker = provider()
    summary = {"updated": 0, "failed": 0, "stopped": 0}
    if tracker is None:
        return summary
    now = now or timezone.now()
    for shipment in due(now)[:limit]:
        try:
            if shipment.tracker_id:
                update = tracker.fetch(tracker_id=shipment.tracker_id)
            else:
                update = tracker.register(
                    tracking_number=shipment.tracking_number, carrier=shipment.carrier
                )
        except TrackingError as exc:
            summary["failed"] += 1
            _failed(shipment, exc, now)
            if exc.transient:
                summary["stopped"] = 1
                break  # the provider is down or throttling: the rest wait for the next tick
            continue
        actions.record_tracking(
            shipment=shipment, update=update, next_poll_at=now + poll_interval()
        )
        summary["updated"] += 1
    return summary


def _failed(shipment: Shipment, exc: TrackingError, now: datetime) -> None:
    wait = backoff(shipment.poll_failures + 1) if exc.transient else REFUSED_RETRY
    logger.warning(
        "tracking %s (shipment %s) failed, next try in %s: %s",
        shipment.tracking_number, shipment.pk, wait, exc.message,
    )  # fmt: skip
    actions.record_tracking_failure(shipment=shipment, error=exc.message, retry_at=now + wait)


# --- webhooks ------------------------------------------------------------------------------------


def _tracking_update(store: None, payload: dict[str, Any]) -> None:
    update = AfterShip.parse_webhook(payload)
    if update is None:
        return
    match = Q(tracking_number=update.tracking_number) if update.tracking_number else Q(pk=None)
    if update.tracker_id:
        match |= Q(tracker_id=update.tracker_id)
    next_poll = timezone.now() + poll_interval()
    for shipment in Shipment.objects.filter(match).select_related("order"):
        actions.record_tracking(shipment=shipment, update=update, next_poll_at=next_poll)


def _webhook_secret() -> str | None:
    row = account()
    return row.webhook_secret if row is not None and row.webhook_secret else None


SOURCE = webhooks.register(
    webhooks.Source(
        platform=TrackingProviderName.AFTERSHIP,
        signature_header=SIGNATURE_HEADER,
        handlers={"tracking_update": _tracking_update},
        topic_field="event",
        id_field="event_id",
        account_secret=_webhook_secret,
    )
)

aftership_webhook = webhooks.endpoint(SOURCE)
