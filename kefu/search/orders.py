"""Orders and shipments in the search box: exact lookups by order and tracking number.

Registered with :mod:`kefu.search.identifiers` by ``apps.SearchConfig.ready``. A query read as
an order number (``#1001``, ``1001``, Amazon ``123-1234567-1234567``) matches ``Order.number``
written with or without its ``#`` and ``Order.external_id``; a tracking number matches
``Shipment.tracking_number`` (in either case; groups typed with spaces were joined by
``identifiers.classify``). Orders come only through ``kefu.commerce.selectors.
orders_visible_to``. Each order found brings into the exact hits its customer and the
conversations linked to it (the service shows those only if the agent may see them).
"""

from __future__ import annotations

from django.db.models import Q
from django.urls import NoReverseMatch, reverse

from kefu.accounts.models import Agent
from kefu.commerce.models import ConversationOrder, Order, Shipment, Store
from kefu.commerce.selectors import orders_visible_to
from kefu.search.identifiers import ExactHits, Identifier

MAX_ORDERS = 20


def resolve(query: str, found: list[Identifier], agent: Agent, hits: ExactHits) -> None:
    """Append the visible orders matching ``found``'s order and tracking readings to ``hits``.

    Two queries at most (orders, their linked conversations), each on an index.
    """
    numbers = {i.value for i in found if i.kind == "order"}
    tracking = {i.value for i in found if i.kind == "tracking"}
    if not (numbers or tracking):
        return
    condition = Q()
    if numbers:
        written = numbers | {f"#{n}" for n in numbers}
        # Order numbers are indexed per store (store, number) and (store, external_id): naming
        # every store lets both engines probe those indexes instead of scanning the orders.
        stores = list(Store.objects.values_list("pk", flat=True))
        condition |= Q(store_id__in=stores) & (Q(number__in=written) | Q(external_id__in=written))
    if tracking:
        forms = tracking | {t.lower() for t in tracking}
        condition |= Q(pk__in=Shipment.objects.filter(tracking_number__in=forms).values("order_id"))
    orders = list(
        orders_visible_to(agent)
        .filter(condition)
        .select_related("store", "customer")
        .order_by("-placed_at", "-pk")[:MAX_ORDERS]
    )
    if not orders:
        return
    linked = ConversationOrder.objects.filter(order__in=[o.pk for o in orders]).order_by("-pk")
    for conversation_id in linked.values_list("conversation_id", flat=True):
        if conversation_id not in hits.conversation_ids:
            hits.conversation_ids.append(conversation_id)
    for order in orders:
        hits.orders.append(_hit(order))
        if order.customer_id and order.customer_id not in hits.customer_ids:
            hits.customer_ids.append(order.customer_id)


def _hit(order: Order) -> dict:
    who = str(order.customer) if order.customer else order.email
    return {
        "id": order.pk,
        "number": order.number,
        "external_id": order.external_id,
        "store_id": order.store_id,
        "store": order.store.name,
        "customer_id": order.customer_id,
        "status": order.status,
        "placed_at": order.placed_at,
        "summary": " · ".join(p for p in (who, order.store.name) if p),
        "url": _url(order),
    }


def _url(order: Order) -> str:
    """The order's page where the workspace has one; '' (the results page) otherwise."""
    for name in ("workspace:order", "commerce:order"):
        try:
            return reverse(name, args=[order.pk])
        except NoReverseMatch:
            continue
    return ""
