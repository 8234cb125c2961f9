"""Carriers: recognising tracking numbers (:mod:`.recognize`) and order numbers in free text."""

from kefu.commerce.carriers.recognize import (
    TrackingMatch,
    find_order_numbers,
    find_tracking_numbers,
    identify,
)

__all__ = ["TrackingMatch", "find_order_numbers", "find_tracking_numbers", "identify"]
