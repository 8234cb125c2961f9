"""Background work of the commerce app."""

from __future__ import annotations

import logging

from django_tasks import task

from kefu.commerce.models import Platform, Store

logger = logging.getLogger(__name__)


@task()
def drain_webhooks() -> int:
    """Process the stored platform webhooks that are due (see kefu.commerce.webhooks)."""
    from kefu.commerce import webhooks

    return webhooks.drain()


@task()
def reconcile_store(store_id: int) -> int:
    """Catch up one Shopify store's orders changed since its last sync (see shopify.sync)."""
    from kefu.commerce.platforms import PlatformError
    from kefu.commerce.platforms.shopify.sync import reconcile

    store = Store.objects.filter(pk=store_id, platform=Platform.SHOPIFY).first()
    if store is None:
        return 0
    try:
        return reconcile(store)
    except PlatformError as exc:
        logger.warning("reconciling store %s failed: %s", store_id, exc.message)
        return 0


@task()
def reconcile_all() -> int:
    """Enqueue a reconciliation per connected Shopify store; how many were enqueued."""
    ids = list(
        Store.objects.filter(platform=Platform.SHOPIFY)
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
