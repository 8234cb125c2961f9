"""The tracking-provider adapter interface: what kefu needs from a service that follows parcels
across carriers (AfterShip today, :mod:`.aftership`).

A provider turns its own shapes into a :class:`TrackingUpdate` (kefu's normalized statuses and
``{at, status, location, description}`` events, the shape ``Shipment.events`` holds), and raises
:class:`TrackingError` saying whether trying again later may help.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class TrackingError(Exception):
    """The provider refused or could not be reached. ``transient``: try again later."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


@dataclass(frozen=True, slots=True)
class TrackingUpdate:
    """One parcel as the provider sees it now."""

    tracker_id: str
    tracking_number: str
    status: str  # a ShipmentStatus value
    events: list[dict[str, str]] = field(default_factory=list)
    carrier: str = ""


class TrackingProvider(Protocol):
    name: str

    def register(self, *, tracking_number: str, carrier: str) -> TrackingUpdate:
        """Start following a parcel (idempotent: an already followed one is returned as is)."""
        ...

    def fetch(self, *, tracker_id: str) -> TrackingUpdate:
        """The parcel's current state."""
        ...

    def parse_webhook(self, payload: dict[str, Any]) -> TrackingUpdate | None:
        """The update a (verified) webhook carries; None when it carries none."""
        ...
