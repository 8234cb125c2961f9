"""The commerce tick: one self-rescheduling task chain (``tasks.commerce_tick``) that does the
app's periodic work, each part at its own pace, each claimed so that only one process does it:

- every ``TICK_SECONDS`` (60 s): drain the webhook deliveries whose retry is due; poll the
  tracking provider for the shipments due;
- every ``STALL_SECONDS`` (1 h): flag parcels with no scan for ``KEFU_TRACKING_STALL_DAYS`` days
  (``shipment.exception``);
- every ``RECONCILE_SECONDS`` (15 min): re-read the orders changed since the last sync from
  every connected Shopify and WooCommerce store (``tasks.reconcile_all``).

The chain is started by :func:`ensure_ticking` (when a worker starts, and after webhook drains)
whenever no tick ran for three intervals; duplicates die out at the claim (``jobs.claim_turn``).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.utils import timezone

from kefu.commerce import actions, jobs, tracking, webhooks

logger = logging.getLogger(__name__)

TICK = "tick"
TICK_SECONDS = 60
STALL_SECONDS = 3600
RECONCILE_SECONDS = 900


def tick(*, now: datetime | None = None) -> dict[str, int]:
    """One pass of the periodic work; what each part did."""
    now = now or timezone.now()
    summary: dict[str, int] = {"webhooks": webhooks.drain()}
    summary.update({f"tracking_{k}": v for k, v in tracking.poll(now=now).items()})
    if jobs.claim_turn("stalled", STALL_SECONDS, now=now):
        summary["stalled"] = len(actions.flag_stalled_shipments(now=now))
    if jobs.claim_turn("reconcile", RECONCILE_SECONDS, now=now):
        from kefu.commerce.tasks import reconcile_all

        summary["reconciling"] = reconcile_all.call()
    return summary


_next_check = 0.0


def ensure_ticking() -> None:
    """Start the tick chain when no tick ran for three intervals (checked at most once per
    interval per process). Backends that cannot defer (immediate, in tests) never chain."""
    global _next_check
    if time.monotonic() < _next_check:
        return
    _next_check = time.monotonic() + TICK_SECONDS
    from kefu.commerce.tasks import commerce_tick

    try:
        if not commerce_tick.get_backend().supports_defer:
            return
        last = jobs.last_turn(TICK)
        if last is not None and last > timezone.now() - timedelta(seconds=3 * TICK_SECONDS):
            return
        commerce_tick.enqueue()
    except Exception:
        _next_check = 0.0
        logger.exception("could not start the commerce tick")
