"""Money as integer minor units of an ISO 4217 currency. No floats anywhere.

An amount is an ``int`` count of the currency's minor unit (cents for USD, yen for JPY, fils for
KWD). Parsing and formatting go through :class:`decimal.Decimal` so "19.99" is exactly 1999 and
never 1998.9999. Refund arithmetic (:func:`refundable`, :func:`check_refund`) guarantees that the
sum of refunds never exceeds what was paid.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from kefu.core.errors import InvalidInput

# ISO 4217 currencies whose minor unit is not the usual 1/100. Everything else has 2 decimals.
ZERO_DECIMAL = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
        "VND", "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip
THREE_DECIMAL = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
FOUR_DECIMAL = frozenset({"CLF", "UYW"})

# Larger than any real order (10^15 minor units) yet far inside a 64-bit column.
MAX_MINOR = 10**15


def exponent(currency: str) -> int:
    """Number of decimals of ``currency``'s minor unit (0, 2, 3 or 4)."""
    code = normalize_currency(currency)
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    if code in FOUR_DECIMAL:
        return 4
    return 2


def normalize_currency(currency: str) -> str:
    code = (currency or "").strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise InvalidInput(f"not an ISO 4217 currency code: {currency!r}", field="currency")
    return code


def to_minor(amount: str | int | Decimal, currency: str) -> int:
    """Parse a major-unit amount ("19.99", Decimal("5"), 7) into minor units.

    Refuses floats (they cannot carry money exactly), negative or non-finite amounts, more
    decimals than the currency has ("1.5" JPY, "1.2345" KWD) and absurdly large values.
    """
    if isinstance(amount, (float, bool)):
        raise InvalidInput("amounts must be strings or integers, never floats", field="amount")
    try:
        value = Decimal(amount.strip() if isinstance(amount, str) else amount)
    except (InvalidOperation, ValueError) as exc:
        raise InvalidInput(f"not an amount: {amount!r}", field="amount") from exc
    if not value.is_finite():
        raise InvalidInput(f"not an amount: {amount!r}", field="amount")
    if value < 0:
        raise InvalidInput("amounts cannot be negative", field="amount")
    digits = exponent(currency)
    scaled = value.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise InvalidInput(
            f"{currency.upper()} has {digits} decimals; {amount!r} has more", field="amount"
        )
    minor = int(scaled)
    if minor > MAX_MINOR:
        raise InvalidInput("amount too large", field="amount")
    return minor


def to_major(minor: int, currency: str) -> Decimal:
    """The exact Decimal of ``minor`` units ("19.99" for 1999 USD, "12.345" for 12345 KWD)."""
    digits = exponent(currency)
    return Decimal(int(minor)).scaleb(-digits).quantize(Decimal(1).scaleb(-digits))


def format_money(minor: int, currency: str) -> str:
    """Plain, locale-neutral display: ``"19.99 USD"``, ``"1,500 JPY"``, ``"-0.250 KWD"``."""
    digits = exponent(currency)
    major = to_major(minor, currency)
    text = f"{major:,.{digits}f}"
    return f"{text} {normalize_currency(currency)}"


def refundable(*, paid: int, refunded: int) -> int:
    """What can still be refunded: never negative, never more than was paid."""
    if paid < 0 or refunded < 0:
        raise InvalidInput("amounts cannot be negative", field="amount")
    return max(paid - refunded, 0)


def check_refund(*, amount: int, paid: int, refunded: int) -> int:
    """``amount`` if refunding it keeps the total refunded within ``paid``; else InvalidInput."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidInput("refund amounts are integers of minor units", field="amount")
    if amount <= 0:
        raise InvalidInput("a refund must be more than zero", field="amount")
    left = refundable(paid=paid, refunded=refunded)
    if amount > left:
        raise InvalidInput(
            f"refund of {amount} exceeds the {left} still refundable", field="amount"
        )
    return amount


def line_refund_amount(*, unit_price: int, quantity: int) -> int:
    """The amount for refunding ``quantity`` units of a line (integer arithmetic only)."""
    if quantity <= 0:
        raise InvalidInput("a refunded quantity must be at least 1", field="quantity")
    return unit_price * quantity
