"""AfterShip Tracking API (version 2025-01), through kefu.core.http.

- ``POST {base}/trackings`` with ``{"tracking_number", "slug"}`` starts following a parcel:
  201 ``{"meta": {"code": 201, ...}, "data": <tracking>}``. Following it twice is refused with
  ``meta.code`` 4003 ("Tracking already exists."), then kefu looks it up:
  ``GET {base}/trackings?tracking_numbers=<n>`` answers ``{"data": {"trackings": [...]}}``.
- ``GET {base}/trackings/{id}`` answers ``{"meta", "data": <tracking>}``.
- Every request carries the ``as-api-key`` header. Errors: ``meta.code`` / ``meta.message``
  with the HTTP status; 429 and 5xx (and an unreachable host) are transient.
- Webhooks: the raw body signed with the account's webhook secret, base64 HMAC-SHA256 in the
  ``aftership-hmac-sha256`` header; body ``{"event": "tracking_update", "event_id": <uuid>,
  "is_tracking_first_tag", "msg": <tracking>, "ts"}``.

A tracking has ``id``, ``tracking_number``, ``slug``, ``tag`` (Pending, InfoReceived,
InTransit, OutForDelivery, AttemptFail, Delivered, AvailableForPickup, Exception, Expired),
``subtag`` (``Exception_010`` / ``Exception_011``: returning / returned to the sender) and
``checkpoints`` (``checkpoint_time`` with its offset, ``tag``, ``subtag``, ``message``,
``location``, ``city``, ``state``, ``country_region``).
"""

from __future__ import annotations

from typing import Any

import httpx

from kefu.commerce.carriers.providers import TrackingError, TrackingUpdate
from kefu.commerce.models import ShipmentStatus, TrackingAccount
from kefu.core import http

DEFAULT_API = "https://api.aftership.com/tracking/2025-01"
SIGNATURE_HEADER = "aftership-hmac-sha256"
ALREADY_EXISTS = 4003

TAGS = {
    "Pending": ShipmentStatus.LABEL_CREATED,
    "InfoReceived": ShipmentStatus.LABEL_CREATED,
    "InTransit": ShipmentStatus.IN_TRANSIT,
    "OutForDelivery": ShipmentStatus.OUT_FOR_DELIVERY,
    "AvailableForPickup": ShipmentStatus.OUT_FOR_DELIVERY,
    "Delivered": ShipmentStatus.DELIVERED,
    "AttemptFail": ShipmentStatus.EXCEPTION,
    "Exception": ShipmentStatus.EXCEPTION,
    "Expired": ShipmentStatus.EXCEPTION,
}
RETURNED_SUBTAGS = frozenset({"Exception_010", "Exception_011"})

# kefu's carrier names (kefu.commerce.carriers.recognize, platforms' tracking companies) to
# AfterShip courier slugs; an unknown carrier is left to AfterShip's own detection.
SLUGS = {
    "ups": "ups", "usps": "usps", "fedex": "fedex", "dhl": "dhl", "china_post": "china-post",
    "ems": "china-ems", "sf_express": "sf-express", "yunexpress": "yunexpress",
    "royal_mail": "royal-mail", "cainiao": "cainiao", "4px": "4px",
    "hongkong_post": "hong-kong-post",
}  # fmt: skip


def status_of(tag: str, subtag: str = "") -> str:
    if subtag in RETURNED_SUBTAGS:
        return ShipmentStatus.RETURNED
    return TAGS.get(tag, ShipmentStatus.IN_TRANSIT)


def _location(point: dict[str, Any]) -> str:
    if point.get("location"):
        return str(point["location"])
    parts = (point.get("city"), point.get("state"), point.get("country_region"))
    return ", ".join(str(p) for p in parts if p)


def update_from(tracking: dict[str, Any]) -> TrackingUpdate:
    """kefu's view of an AfterShip tracking object."""
    events = [
        {
            "at": str(point.get("checkpoint_time") or ""),
            "status": status_of(str(point.get("tag") or ""), str(point.get("subtag") or "")),
            "location": _location(point),
            "description": str(point.get("message") or ""),
        }
        for point in tracking.get("checkpoints") or []
        if point.get("checkpoint_time")
    ]
    return TrackingUpdate(
        tracker_id=str(tracking.get("id") or ""),
        tracking_number=str(tracking.get("tracking_number") or "").replace(" ", "").upper(),
        status=status_of(str(tracking.get("tag") or ""), str(tracking.get("subtag") or "")),
        events=events,
        carrier=str(tracking.get("slug") or ""),
    )


class AfterShip:
    name = "aftership"

    def __init__(self, account: TrackingAccount) -> None:
        self.base = (account.api_url or DEFAULT_API).rstrip("/")
        self.api_key = account.api_key

    def _call(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        try:
            response = http.request(
                method,
                f"{self.base}{path}",
                headers={"as-api-key": self.api_key, "Content-Type": "application/json"},
                retries=1,
                **kwargs,
            )
        except (httpx.HTTPError, http.ResponseTooLarge) as exc:
            message = f"AfterShip unreachable ({type(exc).__name__})"
            raise TrackingError(message, transient=True) from exc
        except http.BlockedDestination as exc:
            raise TrackingError(f"AfterShip address refused: {exc}", transient=False) from exc
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        return response.status_code, answer if isinstance(answer, dict) else {}

    def _data(self, status: int, answer: dict[str, Any]) -> dict[str, Any]:
        if status in (200, 201):
            data = answer.get("data")
            if isinstance(data, dict):
                return data
        meta = answer.get("meta") or {}
        message = str(meta.get("message") or f"AfterShip answered HTTP {status}")
        raise TrackingError(message, transient=status == 429 or status >= 500 or status == 200)

    def register(self, *, tracking_number: str, carrier: str) -> TrackingUpdate:
        body: dict[str, Any] = {"tracking_number": tracking_number}
        if carrier.lower() in SLUGS:
            body["slug"] = SLUGS[carrier.lower()]
        status, answer = self._call("POST", "/trackings", json=body)
        if (answer.get("meta") or {}).get("code") == ALREADY_EXISTS:
            return self._find(tracking_number)
        data = self._data(status, answer)
        return update_from(data.get("tracking", data))

    def _find(self, tracking_number: str) -> TrackingUpdate:
        status, answer = self._call(
            "GET", "/trackings", params={"tracking_numbers": tracking_number}
        )
        found = self._data(status, answer).get("trackings") or []
        if not found:
            raise TrackingError(f"AfterShip does not know {tracking_number}", transient=True)
        return update_from(found[0])

    def fetch(self, *, tracker_id: str) -> TrackingUpdate:
        status, answer = self._call("GET", f"/trackings/{tracker_id}")
        data = self._data(status, answer)
        return update_from(data.get("tracking", data))

    @staticmethod
    def parse_webhook(payload: dict[str, Any]) -> TrackingUpdate | None:
        message = payload.get("msg")
        if payload.get("event") != "tracking_update" or not isinstance(message, dict):
            return None
        return update_from(message)
