"""Scoped reads of orders and what hangs off them.

Decision (docs/commerce.md): an agent sees the orders of the **stores of the inboxes they can
see**, plus the orders of **customers who have a conversation in one of those inboxes** (a
customer may write to one brand's inbox about another brand's order). Admins and superusers see
every order; inactive agents none. Anything else is "not found", never "forbidden".
"""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet

from kefu.accounts.models import Agent
from kefu.commerce.models import Order, OrderEvent
from kefu.conversations.models import Conversation, Inbox
from kefu.conversations.selectors import visible_inbox_ids
from kefu.core.errors import NotFound


def orders_visible_to(agent: Agent) -> QuerySet[Order]:
    if not agent.is_active:
        return Order.objects.none()
    if agent.sees_every_inbox:
        return Order.objects.all()
    inbox_ids = visible_inbox_ids(agent)
    stores = Inbox.objects.filter(pk__in=inbox_ids, store__isnull=False).values("store_id")
    customers = Conversation.objects.filter(inbox_id__in=inbox_ids).values("customer_id")
    return Order.objects.filter(Q(store_id__in=stores) | Q(customer_id__in=customers))


def get_order(agent: Agent, order_id: int, *, lock: bool = False) -> Order:
    """The order if ``agent`` may see it; NotFound otherwise."""
    found = orders_visible_to(agent).filter(pk=order_id).select_related("store", "customer")
    order = found.first()
    if order is None:
        raise NotFound(f"order {order_id} not found")
    return order


def orders_for_customer(agent: Agent, customer_id: int, *, limit: int = 50) -> list[Order]:
    """The customer's most recent visible orders with everything the panel shows, prefetched."""
    return list(
        orders_visible_to(agent)
        .filter(customer_id=customer_id)
        .select_related("store")
        .prefetch_related(
            "lines",
            "shipments",
            "refunds",
            "returns",
            "disputes",
            Prefetch("events", queryset=OrderEvent.objects.order_by("-created_at", "-id")),
        )
        .order_by("-placed_at", "-id")[:limit]
    )
