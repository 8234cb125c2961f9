"""Reconciliation: read the orders modified since the last sync from the REST API v3 and upsert
them, so whatever webhooks missed is caught up.

``GET /wp-json/wc/v3/orders?modified_after=<ISO>&dates_are_gmt=true&orderby=modified&order=asc
&per_page=100&page=<n>``, every page up to ``X-WP-TotalPages``; each order is the same resource
the webhooks carry, so both paths go through ``payloads.order_data`` and update the same rows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils import timezone

from kefu.commerce import actions
from kefu.commerce.models import Store
from kefu.commerce.platforms import PlatformError
from kefu.commerce.platforms.woocommerce import payloads
from kefu.commerce.platforms.woocommerce.client import WooGateway

MAX_PAGES = 200


def reconcile(store: Store, *, now: datetime | None = None) -> int:
    """Upsert the store's orders modified since ``store.synced_at`` (all when never synced);
    the number upserted. ``synced_at`` moves only after every page was read, so a failure
    (PlatformError) is retried from the same point next time."""
    gateway = WooGateway.for_store(store)
    if gateway is None:
        raise PlatformError("the store is not connected to WooCommerce")
    started = now or timezone.now()
    since = store.synced_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if store.synced_at else ""
    count, page, pages = 0, 1, 1
    while page <= min(pages, MAX_PAGES):
        orders, pages = gateway.list_orders(modified_after=since, page=page)
        for order in orders:
            actions.upsert_order(store=store, data=payloads.order_data(order))
            count += 1
        page += 1
    Store.objects.filter(pk=store.pk).update(synced_at=started)
    store.synced_at = started
    return count
