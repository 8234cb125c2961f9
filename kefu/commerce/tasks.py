"""Background work of the commerce app (the schedule: kefu.commerce.schedule)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone
from django_tasks import task

from kefu.commerce.models import Platform, Store

logger = logging.getLogger(__name__)

RECONCILED_PLATFORMS = (Platform.SHOPIFY, Platform.WOOCOMMERCE)


@task()
def drain_webhooks() -> int:
    """Process the stored platform webhooks that are due (see kefu.commerce.webhooks)."""
    from kefu.commerce import schedule, webhooks

    done = webhooks.drain()
    schedule.ensure_ticking()
    return done


@task()
def commerce_tick() -> dict[str, int]:
    """The periodic pass (kefu.commerce.schedule.tick), rescheduling itself every TICK_SECONDS.

    A turn is claimed by stamping the "tick" row only when no tick ran in the last half
    interval; a chain that loses the claim ends, so duplicate chains die out to one.
    """
    from kefu.commerce import jobs, schedule

    if not jobs.claim_turn(schedule.TICK, schedule.TICK_SECONDS):
        return {}
    try:
        return schedule.tick()
    finally:
        if commerce_tick.get_backend().supports_defer:
            run_after = timezone.now() + timedelta(seconds=schedule.TICK_SECONDS)
            commerce_tick.using(run_after=run_after).enqueue()


@task()
def reconcile_store(store_id: int) -> int:
    """Catch up one Shopify or WooCommerce store's orders changed since its last sync (see
    ``platforms/<name>/sync.py``); how many orders were upserted (0 after a logged failure,
    retried from the same point next time)."""
    from kefu.commerce.platforms import PlatformError
    from kefu.commerce.platforms.shopify import sync as shopify
    from kefu.commerce.platforms.woocommerce import sync as woocommerce

    store = Store.objects.filter(pk=store_id, platform__in=RECONCILED_PLATFORMS).first()
    if store is None:
        return 0
    reconcile = shopify.reconcile if store.platform == Platform.SHOPIFY else woocommerce.reconcile
    try:
        return reconcile(store)
    except PlatformError as exc:
        logger.warning("reconciling store %s failed: %s", store_id, exc.message)
        return 0


@task()
def reconcile_all() -> int:
    """Enqueue a reconciliation per connected Shopify or WooCommerce store; how many."""
    ids = list(
        Store.objects.filter(platform__in=RECONCILED_PLATFORMS)
        .exclude(access_token="")
        .values_list("pk", flat=True)
    )
    for store_id in ids:
        reconcile_store.enqueue(store_id)
    return len(ids)


@task()
def flag_stalled_shipments() -> int:
    """Raise ``shipment.exception`` for parcels that stopped moving (see actions)."""
    from kefu.commerce import actions

    return len(actions.flag_stalled_shipments())


@task()
def poll_tracking() -> dict[str, int]:
    """One tracking-provider polling pass (see kefu.commerce.tracking)."""
    from kefu.commerce import tracking

    return tracking.poll()
