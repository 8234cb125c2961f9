"""Marketplace relay mail: Amazon buyer-seller messages and eBay member messages.

Amazon relays a buyer's message from an anonymised address at ``marketplace.amazon.<tld>``
(``abc123@marketplace.amazon.com``, ``...amazon.co.uk``, ``...amazon.co.jp``); answering that
address reaches the buyer. Order numbers look like ``123-1234567-1234567``. eBay relays member
messages from ``members.ebay.<tld>``; its order numbers look like ``12-12345-12345`` and items
have 12-digit numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_AMAZON_SENDER = re.compile(r"@marketplace\.amazon\.[a-z]{2,3}(?:\.[a-z]{2})?$", re.IGNORECASE)
_EBAY_SENDER = re.compile(r"@members\.ebay\.[a-z]{2,3}(?:\.[a-z]{2})?$", re.IGNORECASE)
_AMAZON_ORDER = re.compile(r"(?<![\d-])\d{3}-\d{7}-\d{7}(?![\d-])")
_EBAY_ORDER = re.compile(r"(?<![\d-])\d{2}-\d{5}-\d{5}(?![\d-])")
_EBAY_ITEM = re.compile(r"(?:item|article|artikel|物品)\D{0,20}?(\d{12})(?!\d)", re.IGNORECASE)
MAX_NUMBERS = 20
# Amazon frames the buyer's words: "------------- Message: -------------" ... "------------- End
# message -------------" (the labels in the marketplace's language).
_AMAZON_FRAME = re.compile(r"^-{5,}[^\n-]{1,60}-{5,}[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class RelayMail:
    platform: str  # "amazon" or "ebay"
    order_numbers: tuple[str, ...]
    item_numbers: tuple[str, ...] = ()

    def as_metadata(self) -> dict:
        found: dict = {"platform": self.platform, "order_numbers": list(self.order_numbers)}
        if self.item_numbers:
            found["item_numbers"] = list(self.item_numbers)
        return found


def recognise(sender: str, subject: str, text: str) -> RelayMail | None:
    """The relay a mail came through, with the order numbers in its subject and text."""
    both = f"{subject}\n{text}"
    if _AMAZON_SENDER.search(sender.strip()):
        return RelayMail("amazon", _unique(_AMAZON_ORDER.findall(both)))
    if _EBAY_SENDER.search(sender.strip()):
        return RelayMail(
            "ebay", _unique(_EBAY_ORDER.findall(both)), _unique(_EBAY_ITEM.findall(both))
        )
    return None


def _unique(found: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(found))[:MAX_NUMBERS]


def buyer_words(text: str) -> str:
    """The buyer's own words inside Amazon's frame; the whole text when there is no frame."""
    frames = list(_AMAZON_FRAME.finditer(text))
    if len(frames) < 2:
        return text
    inside = text[frames[0].end() : frames[1].start()].strip()
    return inside or text
