"""The WooCommerce REST API v3: refunds and cancellations, through kefu.core.http.

``POST /wp-json/wc/v3/orders/<id>/refunds`` with ``amount`` (a decimal string), ``reason``,
``line_items`` (``id``, ``quantity``, ``refund_total``) and ``api_refund: true`` (the payment
gateway returns the money), answered 201 with the refund; ``PUT /wp-json/wc/v3/orders/<id>``
with ``{"status": "cancelled"}``. Errors come as ``{"code", "message"}``. Authentication: the
store's consumer key and secret (``Store.access_token`` holds ``ck_…:cs_…``, encrypted) as HTTP
Basic over HTTPS.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from kefu.commerce import money
from kefu.commerce.models import Order, OrderLine, Refund, Store
from kefu.commerce.platforms import PlatformError, register
from kefu.core import http

PAGE = 100


class WooGateway:
    def __init__(self, store: Store) -> None:
        self.store = store
        base = store.api_url or f"https://{store.platform_domain}"
        self.base = base.rstrip("/") + "/wp-json/wc/v3"
        self.authorization = "Basic " + base64.b64encode(store.access_token.encode()).decode()

    @classmethod
    def for_store(cls, store: Store) -> WooGateway | None:
        if ":" not in store.access_token or not (store.platform_domain or store.api_url):
            return None
        return cls(store)

    def _call(self, method: str, path: str, body: dict[str, Any], ok: int) -> dict[str, Any]:
        try:
            response = http.request(
                method,
                f"{self.base}{path}",
                json=body,
                headers={"Authorization": self.authorization},
                retries=1,
            )
        except (httpx.HTTPError, http.BlockedDestination, http.ResponseTooLarge) as exc:
            raise PlatformError(f"WooCommerce could not be reached ({type(exc).__name__})") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code != ok:
            message = answer.get("message") if isinstance(answer, dict) else None
            raise PlatformError(str(message or f"WooCommerce answered HTTP {response.status_code}"))
        return answer if isinstance(answer, dict) else {}

    def list_orders(self, *, modified_after: str, page: int) -> tuple[list[dict[str, Any]], int]:
        """One page (oldest change first) of the orders modified after ``modified_after`` (ISO
        8601, GMT); the orders and the number of pages (``X-WP-TotalPages``)."""
        params = {"modified_after": modified_after, "dates_are_gmt": "true", "orderby": "modified",
                  "order": "asc", "per_page": str(PAGE), "page": str(page)}  # fmt: skip
        if not modified_after:
            del params["modified_after"]
        try:
            response = http.request(
                "GET", f"{self.base}/orders", params=params,
                headers={"Authorization": self.authorization},
            )  # fmt: skip
            answer = response.json()
        except (httpx.HTTPError, http.BlockedDestination, http.ResponseTooLarge) as exc:
            raise PlatformError(f"WooCommerce could not be reached ({type(exc).__name__})") from exc
        except ValueError as exc:
            raise PlatformError("WooCommerce answered something that is not JSON") from exc
        if response.status_code != 200 or not isinstance(answer, list):
            message = answer.get("message") if isinstance(answer, dict) else None
            raise PlatformError(str(message or f"WooCommerce answered HTTP {response.status_code}"))
        pages = int(response.headers.get("X-WP-TotalPages") or 1)
        return [o for o in answer if isinstance(o, dict)], pages

    def refund(self, *, order: Order, refund: Refund) -> str:
        lines = {line.pk: line for line in OrderLine.objects.filter(order=order)}
        body: dict[str, Any] = {
            "amount": str(money.to_major(refund.amount, order.currency)),
            "reason": refund.reason,
            "api_refund": True,
        }
        if refund.lines:
            body["line_items"] = [
                {
                    "id": int(lines[item["line_id"]].external_id),
                    "quantity": item["quantity"],
                    "refund_total": str(money.to_major(item["amount"], order.currency)),
                }
                for item in refund.lines
            ]
        answer = self._call("POST", f"/orders/{order.external_id}/refunds", body, 201)
        if not answer.get("id"):
            raise PlatformError("WooCommerce did not confirm the refund")
        return str(answer["id"])

    def cancel(self, *, order: Order, reason: str) -> str:
        self._call("PUT", f"/orders/{order.external_id}", {"status": "cancelled"}, 200)
        return ""

    def update_shipping_address(self, *, order: Order, address: dict[str, str]) -> None:
        names = {"address1": "address_1", "address2": "address_2", "province": "state",
                 "zip": "postcode", "country_code": "country"}  # fmt: skip
        shipping = {names.get(key, key): value for key, value in address.items()}
        self._call("PUT", f"/orders/{order.external_id}", {"shipping": shipping}, 200)


register("woocommerce", WooGateway)
