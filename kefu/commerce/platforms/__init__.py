"""Store platforms carry out what kefu decides (refund, cancel) on the shop's own system.

Each platform registers a gateway for its ``Store.platform`` value (:func:`register`). A gateway
call either succeeds and returns the platform's id for what it did, or raises
:class:`PlatformError` with a message safe to show to the agent; actions call gateways while
holding the order's row lock and write nothing when they fail.

Stores without a connected platform (``custom`` stores, or a Shopify store with no credentials)
use :class:`RecordOnly`: kefu records the refund or cancellation, and the shop's own system
learns of it from the ``order.updated`` event (outbound webhooks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kefu.commerce.models import Order, Refund, Store


class PlatformError(Exception):
    """The platform refused or could not be reached. ``message`` is shown to the agent."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Gateway(Protocol):
    def refund(self, *, order: Order, refund: Refund) -> str:
        """Carry out ``refund`` (not yet saved: amount, lines, reason); the platform's id."""
        ...

    def cancel(self, *, order: Order, reason: str) -> str:
        """Cancel ``order`` on the platform; the platform's id for the job, or ""."""
        ...

    def update_shipping_address(self, *, order: Order, address: dict[str, str]) -> None:
        """Replace the order's shipping address (kefu's keys: see actions.ADDRESS_FIELDS)."""
        ...


class RecordOnly:
    """No platform to call: what kefu records is the truth."""

    def refund(self, *, order: Order, refund: Refund) -> str:
        return ""

    def cancel(self, *, order: Order, reason: str) -> str:
        return ""

    def update_shipping_address(self, *, order: Order, address: dict[str, str]) -> None:
        return None


_factories: dict[str, type] = {}


def register(platform: str, factory: type) -> None:
    _factories[platform] = factory


def gateway_for(store: Store) -> Gateway:
    """The gateway of ``store``'s platform when it is connected, else :class:`RecordOnly`."""
    factory = _factories.get(store.platform)
    if factory is None:
        return RecordOnly()
    connected = factory.for_store(store)  # type: ignore[attr-defined]
    return connected if connected is not None else RecordOnly()
