"""Reconciliation: read the orders changed since the last sync from the Admin GraphQL API and
upsert them, so whatever webhooks missed is caught up.

``orders(first: 50, after: $cursor, sortKey: UPDATED_AT, query: "updated_at:>=<since>")`` with
``pageInfo { hasNextPage endCursor }``; money fields are ``*Set { shopMoney { amount
currencyCode } }``. Ids are global ids (``gid://shopify/Order/450789469``); kefu keeps the
numeric tail, as the webhooks carry it, so both paths update the same rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from kefu.commerce import actions, money
from kefu.commerce.models import FulfillmentStatus, OrderStatus, PaymentStatus, Store
from kefu.commerce.platforms import PlatformError
from kefu.commerce.platforms.shopify.client import ShopifyGateway
from kefu.core.errors import InvalidInput

PAGE = 50
MAX_PAGES = 200

ORDERS = """
query ChangedOrders($query: String!, $after: String) {
  orders(first: 50, after: $after, sortKey: UPDATED_AT, query: $query) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id name email phone currencyCode createdAt updatedAt cancelledAt closedAt
      displayFinancialStatus displayFulfillmentStatus
      subtotalPriceSet { shopMoney { amount } }
      totalShippingPriceSet { shopMoney { amount } }
      totalTaxSet { shopMoney { amount } }
      totalPriceSet { shopMoney { amount } }
      totalRefundedSet { shopMoney { amount } }
      shippingAddress { firstName lastName address1 address2 city province zip countryCodeV2 phone }
      lineItems(first: 100) {
        nodes { id sku title quantity originalUnitPriceSet { shopMoney { amount } } }
      }
    }
  }
}"""

FINANCIAL = {
    "PENDING": PaymentStatus.PENDING,
    "AUTHORIZED": PaymentStatus.AUTHORIZED,
    "PARTIALLY_PAID": PaymentStatus.PAID,
    "PAID": PaymentStatus.PAID,
    "PARTIALLY_REFUNDED": PaymentStatus.PARTIALLY_REFUNDED,
    "REFUNDED": PaymentStatus.REFUNDED,
    "VOIDED": PaymentStatus.VOIDED,
    "EXPIRED": PaymentStatus.FAILED,
}
FULFILLMENT = {
    "FULFILLED": FulfillmentStatus.FULFILLED,
    "PARTIALLY_FULFILLED": FulfillmentStatus.PARTIAL,
    "RESTOCKED": FulfillmentStatus.RESTOCKED,
}


def numeric(gid: str) -> str:
    return gid.rsplit("/", 1)[-1]


def _money(node: dict[str, Any] | None, currency: str) -> int:
    amount = ((node or {}).get("shopMoney") or {}).get("amount") or "0"
    return money.to_minor(str(amount), currency)


def order_data(node: dict[str, Any]) -> actions.OrderData:
    try:
        currency = money.normalize_currency(node["currencyCode"])
        placed = parse_datetime(node["createdAt"])
        if placed is None:
            raise InvalidInput("order without createdAt")
        status = OrderStatus.OPEN
        if node.get("cancelledAt"):
            status = OrderStatus.CANCELLED
        elif node.get("closedAt"):
            status = OrderStatus.CLOSED
        address = node.get("shippingAddress") or {}
        return actions.OrderData(
            external_id=numeric(node["id"]),
            number=node["name"],
            currency=currency,
            placed_at=placed,
            subtotal=_money(node.get("subtotalPriceSet"), currency),
            shipping=_money(node.get("totalShippingPriceSet"), currency),
            tax=_money(node.get("totalTaxSet"), currency),
            total=_money(node.get("totalPriceSet"), currency),
            refunded=_money(node.get("totalRefundedSet"), currency),
            email=node.get("email") or "",
            phone=node.get("phone") or "",
            payment_status=FINANCIAL.get(str(node.get("displayFinancialStatus")), "pending"),
            fulfillment_status=FULFILLMENT.get(
                str(node.get("displayFulfillmentStatus")), FulfillmentStatus.UNFULFILLED
            ),
            status=status,
            shipping_address={
                "first_name": address.get("firstName") or "",
                "last_name": address.get("lastName") or "",
                "address1": address.get("address1") or "",
                "address2": address.get("address2") or "",
                "city": address.get("city") or "",
                "province": address.get("province") or "",
                "zip": address.get("zip") or "",
                "country_code": address.get("countryCodeV2") or "",
            }
            if address
            else {},
            lines=[
                actions.LineData(
                    external_id=numeric(item["id"]),
                    sku=item.get("sku") or "",
                    title=item.get("title") or "",
                    quantity=int(item["quantity"]),
                    unit_price=_money(item.get("originalUnitPriceSet"), currency),
                )
                for item in (node.get("lineItems") or {}).get("nodes") or []
            ],
            raw=node,
            changed_at=parse_datetime(str(node.get("updatedAt") or "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"not a Shopify GraphQL order: {exc}") from exc


def reconcile(store: Store, *, now: datetime | None = None) -> int:
    """Upsert the store's orders changed since ``store.synced_at`` (all when never synced);
    the number upserted. ``synced_at`` moves only after every page was read, so a failure
    (PlatformError) is retried from the same point next time."""
    gateway = ShopifyGateway.for_store(store)
    if gateway is None:
        raise PlatformError("the store is not connected to Shopify")
    started = now or timezone.now()
    query = f"updated_at:>='{store.synced_at.isoformat()}'" if store.synced_at else ""
    count, cursor = 0, None
    for _ in range(MAX_PAGES):
        data = gateway.execute(ORDERS, {"query": query, "after": cursor}).get("orders") or {}
        for node in data.get("nodes") or []:
            actions.upsert_order(store=store, data=order_data(node))
            count += 1
        page = data.get("pageInfo") or {}
        if not page.get("hasNextPage"):
            break
        cursor = page.get("endCursor")
    Store.objects.filter(pk=store.pk).update(synced_at=started)
    store.synced_at = started
    return count
