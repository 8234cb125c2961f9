"""Language detection on real text: the multilingual tickets in ../shared/data (a slice)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from kefu.conversations.enrichment import detect_language

TICKETS = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "data"
    / "tickets-synthetic-multilang"
    / "tickets-v3-multilang.sample.csv"
)


def _tickets(per_language: int) -> list[tuple[str, str]]:
    if not TICKETS.exists():
        pytest.fail(f"the shared data set is missing: {TICKETS}")
    taken: dict[str, int] = {}
    chosen = []
    with TICKETS.open(newline="") as handle:
        for row in csv.DictReader(handle):
            language, body = row["language"], row["body"]
            if body and taken.get(language, 0) < per_language:
                taken[language] = taken.get(language, 0) + 1
                chosen.append((language, body))
    return chosen


def test_the_language_of_real_tickets_is_detected():
    tickets = _tickets(per_language=40)
    assert {language for language, _ in tickets} == {"en", "de", "es", "fr", "pt"}

    wrong = [
        (lang, body[:60]) for lang, body in tickets if detect_language(body) != {"language": lang}
    ]

    assert wrong == []


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("你好，我的订单什么时候发货？", "zh"),
        ("請問我的訂單什麼時候發貨？", "zh"),
        ("مرحبا، أين طلبي رقم 1001؟ مرّ عشرة أيام ولم يصل.", "ar"),
        ("WHERE IS MY ORDER??? I PAID TWO WEEKS AGO!!!", "en"),  # capitals are no German
        ("Hallo, meine Bestellung ist noch nicht angekommen.", "de"),
        ("¿Dónde está mi pedido? Lo compré hace diez días.", "es"),
    ],
)
def test_languages_customers_write_in(text, language):
    assert detect_language(text) == {"language": language}


@pytest.mark.parametrize("text", ["ok", "#1001", "👍👍", "  ", "1Z999AA10123456784"])
def test_text_too_short_to_tell_gets_no_language(text):
    assert detect_language(text) == {}
