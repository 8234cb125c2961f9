"""Money: exact parsing and formatting per ISO 4217 exponent; refunds never exceed what was paid."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kefu.commerce import money
from kefu.core.errors import InvalidInput


@pytest.mark.parametrize(
    ("currency", "digits"),
    [("USD", 2), ("eur", 2), ("JPY", 0), ("KRW", 0), ("VND", 0), ("KWD", 3), ("BHD", 3),
     ("OMR", 3), ("JOD", 3), ("TND", 3), ("CNY", 2), ("GBP", 2)],
)  # fmt: skip
def test_exponent_follows_iso_4217(currency, digits):
    assert money.exponent(currency) == digits


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [("19.99", "USD", 1999), ("0.1", "USD", 10), ("1500", "JPY", 1500), ("12.345", "KWD", 12345),
     (7, "USD", 700), (Decimal("0.30"), "EUR", 30), (" 2.50 ", "GBP", 250), ("1.000", "JPY", 1)],
)  # fmt: skip
def test_to_minor_is_exact(amount, currency, minor):
    assert money.to_minor(amount, currency) == minor


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("1.5", "JPY"), ("1.2345", "KWD"), ("0.001", "USD"), ("-1", "USD"), ("abc", "USD"),
     ("NaN", "USD"), ("Infinity", "USD"), (1.5, "USD"), (True, "USD"), ("1", "US"),
     ("1", "12$"), ("1e20", "USD")],
)  # fmt: skip
def test_to_minor_refuses_what_is_not_money(amount, currency):
    with pytest.raises(InvalidInput):
        money.to_minor(amount, currency)


def test_format_money_per_currency():
    assert money.format_money(1999, "USD") == "19.99 USD"
    assert money.format_money(150000, "JPY") == "150,000 JPY"
    assert money.format_money(250, "kwd") == "0.250 KWD"
    assert money.format_money(0, "EUR") == "0.00 EUR"


currencies = st.sampled_from(["USD", "JPY", "KWD", "EUR", "KRW", "BHD"])


@given(minor=st.integers(min_value=0, max_value=money.MAX_MINOR), currency=currencies)
def test_round_trip_through_major_units(minor, currency):
    assert money.to_minor(str(money.to_major(minor, currency)), currency) == minor


@given(
    paid=st.integers(min_value=0, max_value=10**9),
    attempts=st.lists(st.integers(min_value=-5, max_value=10**9), max_size=20),
)
def test_refunds_never_exceed_what_was_paid(paid, attempts):
    refunded = 0
    for amount in attempts:
        try:
            refunded += money.check_refund(amount=amount, paid=paid, refunded=refunded)
        except InvalidInput:
            continue
        assert amount > 0
    assert 0 <= refunded <= paid
    assert money.refundable(paid=paid, refunded=refunded) == paid - refunded


@given(
    unit=st.integers(min_value=0, max_value=10**7),
    quantity=st.integers(min_value=1, max_value=1000),
    currency=currencies,
)
def test_line_refund_is_integer_arithmetic(unit, quantity, currency):
    amount = money.line_refund_amount(unit_price=unit, quantity=quantity)
    assert amount == unit * quantity
    assert money.to_major(amount, currency) == money.to_major(unit, currency) * quantity


def test_refund_of_zero_or_more_than_left_is_refused():
    with pytest.raises(InvalidInput):
        money.check_refund(amount=0, paid=1000, refunded=0)
    with pytest.raises(InvalidInput, match="exceeds the 1 still refundable"):
        money.check_refund(amount=2, paid=1000, refunded=999)
