"""Reading a whole query as identifiers: every plausible reading, nothing for ordinary text."""

from __future__ import annotations

import pytest

from kefu.search.identifiers import Identifier, classify

pytestmark = pytest.mark.django_db  # phone readings try every store's country


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("#1001", [("number", "1001"), ("order", "1001")]),
        ("1001", [("number", "1001"), ("order", "1001")]),
        ("114-3941689-8772232", [("order", "114-3941689-8772232")]),
        ("1Z999AA10123456784", [("tracking", "1Z999AA10123456784")]),
        ("1z 999 aa1 01 2345 6784", [("tracking", "1Z999AA10123456784")]),
        ("LX123456789CN", [("tracking", "LX123456789CN")]),
        ("lx 123 456 789 cn", [("tracking", "LX123456789CN")]),
        (" Ana@Example.COM ", [("email", "ana@example.com")]),
        ("+86 138 0013 8000", [("phone", "+8613800138000")]),
        ("(0086) 138-0013-8000", [("phone", "+8613800138000")]),
        ("refund my order", []),
        ("", []),
    ],
)
def test_a_query_reads_as_these_identifiers(query, expected):
    assert [(i.kind, i.value) for i in classify(query)] == expected


def test_a_long_digit_string_is_a_tracking_number_and_maybe_a_phone():
    readings = classify("8613800138000")
    assert Identifier("phone", "+8613800138000") in readings
    assert Identifier("tracking", "8613800138000") in readings
