"""Recognise tracking numbers by carrier format, with check digits where the format has one.

A candidate is any run of letters and digits (spaces and dashes inside a number are allowed, as
customers type "1Z 999 AA1 0123 4567 84"). Each carrier is tried in a fixed order; formats with a
check digit must pass it, so a random 12-digit phone number is not a FedEx parcel. Formats without
a check digit (SF Express, YunExpress, Cainiao, 4PX) are recognised only by their fixed prefix
and exact length.

Sources of the formats: UPS 1Z (check digit over the 15 characters after "1Z", letters mapped
``(ord(c) - 3) % 10``); USPS IMpb 20-22 digits (GS1 mod 10, weights 3/1 from the right); FedEx
Express 12 digits (weights 1,3,7 from the right, mod 11 mod 10) and FedEx Ground 15 digits
(GS1 mod 10); DHL Express 10 digits (first nine digits mod 7); UPU S10 (2 letters, 8 digits,
check digit with weights 8,6,4,2,3,5,9,7, ISO country): China Post / EMS ``..CN``, Royal Mail
``..GB``, USPS ``..US``, other posts ``postal``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TrackingMatch:
    carrier: str
    number: str


def _mod10_gs1(digits: str) -> bool:
    """GS1 mod 10: weights 3,1,3,... from the right of the payload; last digit is the check."""
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def _ups(number: str) -> bool:
    body, check = number[2:-1], number[-1]
    if not check.isdigit():
        return False
    total = 0
    for i, char in enumerate(body):
        value = int(char) if char.isdigit() else (ord(char) - 3) % 10
        total += value * 2 if i % 2 else value
    return (10 - total % 10) % 10 == int(check)


def _fedex_express(digits: str) -> bool:
    body, check = digits[:-1], int(digits[-1])
    weights = (1, 3, 7)
    total = sum(int(d) * weights[i % 3] for i, d in enumerate(reversed(body)))
    return total % 11 % 10 == check


def _dhl_express(digits: str) -> bool:
    return int(digits[:9]) % 7 == int(digits[9])


def s10_check_digit(serial: str) -> int:
    """The UPU S10 check digit of an 8-digit serial."""
    total = sum(int(d) * w for d, w in zip(serial, (8, 6, 4, 2, 3, 5, 9, 7), strict=True))
    check = 11 - total % 11
    return {10: 0, 11: 5}.get(check, check)


def _s10(number: str) -> bool:
    return s10_check_digit(number[2:10]) == int(number[10])


S10_CARRIERS = {"CN": "china_post", "GB": "royal_mail", "US": "usps", "HK": "hongkong_post"}


def _s10_carrier(number: str) -> str:
    carrier = S10_CARRIERS.get(number[-2:], "postal")
    if carrier == "china_post" and number.startswith("E"):
        return "ems"
    return carrier


# (pattern over the normalized candidate, check, carrier name or function of the number)
_FORMATS: list[tuple[re.Pattern[str], Callable[[str], bool] | None, str | Callable[[str], str]]] = [
    (re.compile(r"1Z[0-9A-Z]{16}"), _ups, "ups"),
    (re.compile(r"[A-Z]{2}\d{9}[A-Z]{2}"), _s10, _s10_carrier),
    (re.compile(r"SF\d{12,13}"), None, "sf_express"),
    (re.compile(r"YT\d{16}"), None, "yunexpress"),
    (re.compile(r"LP\d{14}"), None, "cainiao"),
    (re.compile(r"CNG\d{8,14}"), None, "cainiao"),
    (re.compile(r"4PX\d{10,16}CN"), None, "4px"),
    (re.compile(r"9[1-5]\d{20}|9[1-5]\d{18}"), _mod10_gs1, "usps"),
    (re.compile(r"\d{15}"), _mod10_gs1, "fedex"),
    (re.compile(r"\d{12}"), _fedex_express, "fedex"),
    (re.compile(r"\d{10}"), _dhl_express, "dhl"),
]

# A run of ASCII words joined by single spaces or dashes; numbers are looked for inside it.
_CANDIDATE = re.compile(r"[0-9A-Za-z]+(?:[ -][0-9A-Za-z]+)*")
_GROUPED = re.compile(r"[ -]")
# Every format at once, to turn most candidates away with one match instead of eleven.
_ANY_FORMAT = re.compile("|".join(f"(?:{pattern.pattern})" for pattern, _, _ in _FORMATS))
# Every format holds a digit: a run of words without one (most of a message's prose) holds no
# tracking number. Before these two shortcuts, recognising the numbers of an ordinary message
# cost more CPU than storing it (each word start tried up to 8 joined groups x 11 formats).
_DIGIT = re.compile(r"\d")


def identify(raw: str) -> TrackingMatch | None:
    """The carrier of ``raw`` (spaces and dashes ignored, any case), or None."""
    number = _GROUPED.sub("", raw).upper()
    if not _ANY_FORMAT.fullmatch(number):
        return None
    for pattern, check, carrier in _FORMATS:
        if pattern.fullmatch(number) and (check is None or check(number)):
            name = carrier(number) if callable(carrier) else carrier
            return TrackingMatch(carrier=name, number=number)
    return None


def find_tracking_numbers(text: str) -> list[TrackingMatch]:
    """Every tracking number in ``text``, in order of appearance, without repeats.

    Customers group numbers ("1Z 999 AA1 0123 4567 84"), so within a run of words joined by
    single spaces or dashes the longest joined group of consecutive words that is a tracking
    number wins, and the search continues after it.
    """
    found: dict[str, TrackingMatch] = {}
    for run in _CANDIDATE.finditer(text or ""):
        if not _DIGIT.search(run.group()):
            continue
        words = _GROUPED.split(run.group())
        start = 0
        while start < len(words):
            match, end = _longest_from(words, start)
            if match is not None:
                found.setdefault(match.number, match)
            start = end
    return list(found.values())


MAX_GROUPS = 8
MAX_LENGTH = 34


def _longest_from(words: list[str], start: int) -> tuple[TrackingMatch | None, int]:
    best: tuple[TrackingMatch | None, int] = (None, start + 1)
    joined = ""
    digits = False
    for end in range(start, min(len(words), start + MAX_GROUPS)):
        joined += words[end]
        if len(joined) > MAX_LENGTH:
            break
        digits = digits or bool(_DIGIT.search(words[end]))
        match = identify(joined) if digits and len(joined) >= 10 else None
        if match is not None:
            best = (match, end + 1)
    return best


# Order numbers as customers write them: "#1001", "order 1001", "订单 1001", Amazon's
# 3-7-7 digits. Only candidates; a match means something only once it names a stored order.
_AMAZON = re.compile(r"(?<!\d)\d{3}-\d{7}-\d{7}(?!\d)")
_HASHED = re.compile(r"(?<![\w&])#([A-Za-z]{0,4}\d{3,12})(?![\w-])")
_WORDED = re.compile(
    r"(?i)(?:order|bestellung|commande|pedido|订单|訂單|طلب)\s*(?:no\.?|number|nr\.?|号)?\s*:?\s*"
    r"#?(\d{3,12})(?![\w-])"
)


# Cheap tests that rule a pattern out before it scans the text (each scan costs 5-10 µs on a
# message of a few hundred characters; this runs for every message received). Every form has
# three digits in a row; casefold() is what the worded pattern's (?i) folds by.
_THREE_DIGITS = re.compile(r"\d{3}")
_ORDER_WORDS = ("order", "bestellung", "commande", "pedido", "订单", "訂單", "طلب")


def find_order_numbers(text: str) -> list[str]:
    """Order numbers in ``text`` as written without "#", in order of appearance, no repeats."""
    text = text or ""
    if _THREE_DIGITS.search(text) is None:
        return []
    hits: list[tuple[int, str]] = []
    if "-" in text:
        hits += [(m.start(), m.group()) for m in _AMAZON.finditer(text)]
    if "#" in text:
        hits += [(m.start(), m.group(1)) for m in _HASHED.finditer(text)]
    folded = text.casefold()
    if any(word in folded for word in _ORDER_WORDS):
        hits += [(m.start(), m.group(1)) for m in _WORDED.finditer(text)]
    seen: dict[str, None] = {}
    for _, number in sorted(hits):
        seen.setdefault(number.upper(), None)
    return list(seen)
