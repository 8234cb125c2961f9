"""The Shopify Admin GraphQL API: refunds and cancellations, through kefu.core.http.

Shapes follow the Admin GraphQL reference: ``refundCreate(input: RefundInput!)`` returning
``refund { id }`` and ``userErrors { field message }``; ``orderCancel(orderId, reason, refund,
restock, notifyCustomer, staffNote)`` returning ``job { id done }`` and
``orderCancelUserErrors { field message code }``. A money refund names the order's successful
sale (or capture) transaction as ``parentId``, so the order's transactions are read first.
"""

from __future__ import annotations

from typing import Any

import httpx

from kefu.commerce import money
from kefu.commerce.models import Order, OrderLine, Refund, Store
from kefu.commerce.platforms import PlatformError, register
from kefu.core import http

API_VERSION = "2025-01"

TRANSACTIONS = """
query OrderTransactions($id: ID!) {
  order(id: $id) { id transactions { id kind status gateway } }
}"""

REFUND_CREATE = """
mutation RefundCreate($input: RefundInput!) {
  refundCreate(input: $input) {
    refund { id totalRefundedSet { shopMoney { amount currencyCode } } }
    userErrors { field message }
  }
}"""

ORDER_CANCEL = """
mutation OrderCancel($orderId: ID!, $reason: OrderCancelReason!, $refund: Boolean!,
                     $restock: Boolean!, $notifyCustomer: Boolean, $staffNote: String) {
  orderCancel(orderId: $orderId, reason: $reason, refund: $refund, restock: $restock,
              notifyCustomer: $notifyCustomer, staffNote: $staffNote) {
    job { id done }
    orderCancelUserErrors { field message code }
  }
}"""


ORDER_UPDATE = """
mutation OrderUpdate($input: OrderInput!) {
  orderUpdate(input: $input) {
    order { id }
    userErrors { field message }
  }
}"""

# kefu's address keys -> MailingAddressInput fields
ADDRESS = {
    "first_name": "firstName",
    "last_name": "lastName",
    "address1": "address1",
    "address2": "address2",
    "city": "city",
    "province": "province",
    "zip": "zip",
    "country_code": "countryCode",
    "phone": "phone",
}


def gid(kind: str, value: str) -> str:
    return value if value.startswith("gid://") else f"gid://shopify/{kind}/{value}"


class ShopifyGateway:
    """A connected Shopify store: its GraphQL endpoint and access token."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.url = store.api_url or (
            f"https://{store.platform_domain}/admin/api/{API_VERSION}/graphql.json"
        )

    @classmethod
    def for_store(cls, store: Store) -> ShopifyGateway | None:
        if not store.access_token or not (store.platform_domain or store.api_url):
            return None
        return cls(store)

    def execute(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The ``data`` of a GraphQL answer; PlatformError on transport or GraphQL errors."""
        try:
            response = http.request(
                "POST",
                self.url,
                json={"query": query, "variables": variables},
                headers={"X-Shopify-Access-Token": self.store.access_token},
                retries=1,
                max_bytes=2 * 1024 * 1024,
            )
        except (httpx.HTTPError, http.BlockedDestination, http.ResponseTooLarge) as exc:
            raise PlatformError(f"Shopify could not be reached ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise PlatformError(f"Shopify answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise PlatformError("Shopify answered something that is not JSON") from exc
        if body.get("errors"):
            first = body["errors"][0]
            raise PlatformError(str(first.get("message", first))[:300])
        return body.get("data") or {}

    def refund(self, *, order: Order, refund: Refund) -> str:
        order_id = gid("Order", order.external_id)
        lines = {line.pk: line for line in OrderLine.objects.filter(order=order)}
        refund_input: dict[str, Any] = {"orderId": order_id, "note": refund.reason, "notify": True}
        if refund.lines:
            refund_input["refundLineItems"] = [
                {
                    "lineItemId": gid("LineItem", lines[item["line_id"]].external_id),
                    "quantity": item["quantity"],
                    "restockType": "NO_RESTOCK",
                }
                for item in refund.lines
            ]
        parent = self._sale_transaction(order_id)
        refund_input["transactions"] = [
            {
                "orderId": order_id,
                "parentId": parent["id"],
                "gateway": parent["gateway"],
                "kind": "REFUND",
                "amount": str(money.to_major(refund.amount, order.currency)),
            }
        ]
        data = self.execute(REFUND_CREATE, {"input": refund_input}).get("refundCreate") or {}
        errors = data.get("userErrors") or []
        if errors:
            raise PlatformError("; ".join(str(e.get("message")) for e in errors)[:300])
        created = data.get("refund") or {}
        if not created.get("id"):
            raise PlatformError("Shopify did not confirm the refund")
        return str(created["id"])

    def _sale_transaction(self, order_id: str) -> dict[str, Any]:
        order = self.execute(TRANSACTIONS, {"id": order_id}).get("order")
        if not order:
            raise PlatformError("Shopify does not know this order")
        for transaction in order.get("transactions") or []:
            if transaction.get("kind") in ("SALE", "CAPTURE") and transaction.get("status") == (
                "SUCCESS"
            ):
                return dict(transaction)
        raise PlatformError("the order has no captured payment to refund")

    def cancel(self, *, order: Order, reason: str) -> str:
        variables = {
            "orderId": gid("Order", order.external_id),
            "reason": "CUSTOMER",
            "refund": False,  # money goes back only through kefu's refund action
            "restock": True,
            "notifyCustomer": True,
            "staffNote": reason[:255] or None,
        }
        data = self.execute(ORDER_CANCEL, variables).get("orderCancel") or {}
        errors = data.get("orderCancelUserErrors") or []
        if errors:
            raise PlatformError("; ".join(str(e.get("message")) for e in errors)[:300])
        return str((data.get("job") or {}).get("id", ""))

    def update_shipping_address(self, *, order: Order, address: dict[str, str]) -> None:
        shipping = {ADDRESS[key]: value for key, value in address.items() if key in ADDRESS}
        variables = {"input": {"id": gid("Order", order.external_id), "shippingAddress": shipping}}
        data = self.execute(ORDER_UPDATE, variables).get("orderUpdate") or {}
        errors = data.get("userErrors") or []
        if errors:
            raise PlatformError("; ".join(str(e.get("message")) for e in errors)[:300])


register("shopify", ShopifyGateway)
