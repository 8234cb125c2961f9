"""Tracking-number and order-number recognition: real formats match, near-misses do not."""

from __future__ import annotations

import pytest

from kefu.commerce.carriers import find_order_numbers, find_tracking_numbers, identify
from kefu.commerce.carriers.recognize import s10_check_digit

REAL = [
    ("1Z999AA10123456784", "ups"),  # UPS's published sample
    ("1z 999 aa1 0123 4567 84", "ups"),  # grouped and lower case, as customers type it
    ("9400100000000000000006", "usps"),  # IMpb 22 digits
    ("9201901649173123456788", "usps"),
    ("94001118992233445564", "usps"),  # 20 digits
    ("986578788855", "fedex"),  # Express 12, mod 11
    ("041441760228964", "fedex"),  # Ground 15 (FedEx documentation number), mod 10
    ("3318810025", "dhl"),  # DHL Express 10, mod 7
    ("1234567891", "dhl"),
    ("EE123456785CN", "ems"),  # China Post EMS, S10
    ("RR123456785CN", "china_post"),  # China Post registered, S10
    ("LX123456785CN", "china_post"),
    ("RA473124829GB", "royal_mail"),  # S10 example
    ("EA123456785US", "usps"),
    ("RB123456785DE", "postal"),
    ("SF1234567890123", "sf_express"),  # SF + 13
    ("SF123456789012", "sf_express"),  # SF + 12
    ("YT2012345678901234", "yunexpress"),  # YT + 16
    ("LP00123456789012", "cainiao"),  # LP + 14
    ("CNG12345678901", "cainiao"),
    ("4PX3000123456789CN", "4px"),
]

NEAR_MISSES = [
    "1Z999AA10123456785",  # UPS, wrong check digit
    "1Z999AA1012345678",  # UPS, one short
    "9400100000000000000007",  # USPS, wrong check digit
    "8400100000000000000006",  # USPS, no 9x prefix
    "986578788856",  # FedEx 12, wrong check digit
    "041441760228965",  # FedEx 15, wrong check digit
    "3318810026",  # DHL, wrong check digit
    "EE123456784CN",  # S10, wrong check digit
    "RA473124828GB",  # S10, wrong check digit
    "E1234567855CN",  # S10, a digit where a letter goes
    "SF12345678901",  # SF + 11
    "SF12345678901234",  # SF + 14
    "YT201234567890123",  # YT + 15
    "LP0012345678901",  # LP + 13
    "4PX3000123456789US",
    "123456789",  # too short for anything
    "hello world",
    "",
]


@pytest.mark.parametrize(("number", "carrier"), REAL)
def test_real_format_numbers_are_recognised(number, carrier):
    match = identify(number)
    assert match is not None
    assert match.carrier == carrier
    assert match.number == number.replace(" ", "").upper()


@pytest.mark.parametrize("number", NEAR_MISSES)
def test_near_misses_do_not_match(number):
    assert identify(number) is None


def test_s10_check_digit_maps_10_to_0_and_11_to_5():
    assert s10_check_digit("47312482") == 9
    assert s10_check_digit("12345678") == 5
    assert s10_check_digit("00000000") == 5  # sum 0 -> 11 -> 5
    assert s10_check_digit("00000001") == 4  # 11 - 7


def test_numbers_are_found_in_a_message_in_order_without_repeats():
    text = (
        "Hi, where is my parcel 1Z 999 AA1 0123 4567 84? The second one is "
        "EE123456785CN (and again: EE123456785CN). My phone is 555-0100."
    )
    found = find_tracking_numbers(text)
    assert [(m.carrier, m.number) for m in found] == [
        ("ups", "1Z999AA10123456784"),
        ("ems", "EE123456785CN"),
    ]


def test_tracking_numbers_in_chinese_text():
    found = find_tracking_numbers("你好，我的快递单号是SF1234567890123，谢谢")
    assert [(m.carrier, m.number) for m in found] == [("sf_express", "SF1234567890123")]


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("Where is order #1001?", ["1001"]),
        ("my order number: 2002 please", ["2002"]),
        ("订单号 3003 还没到", ["3003"]),
        ("Amazon order 123-1234567-1234567 arrived broken", ["123-1234567-1234567"]),
        ("#SH1004 and #1001 and #1001", ["SH1004", "1001"]),
        ("call me at +1 555 0100, room #12", []),  # too short to be an order number
        ("&#1234; is an HTML entity", []),
        ("1234-1234567-1234567 is not Amazon's shape", []),
    ],
)
def test_order_numbers(text, numbers):
    assert find_order_numbers(text) == numbers
