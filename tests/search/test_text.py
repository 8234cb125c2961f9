"""The one analyzer: what text becomes index terms, and how queries become phrases."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from kefu.search.query import parse
from kefu.search.text import analyze, index_terms

TWEETS = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "twcs-sample" / "twcs_first5001.csv"
)


def terms(text: str) -> list[str]:
    return [term.text for term in analyze(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello WORLD", ["hello", "world"]),
        ("ＡＢＣ１２３ full width", ["abc123", "full", "width"]),
        ("Café naïve Straße Øre façade", ["cafe", "naive", "strasse", "ore", "facade"]),
        ("Ærø Łódź Œuvre", ["aero", "lodz", "oeuvre"]),
        ("order_id #1001!", ["order", "id", "1001"]),
        ("don't", ["don", "t"]),
    ],
)
def test_latin_words_are_case_width_and_accent_folded(text, expected):
    assert terms(text) == expected


@pytest.mark.parametrize(
    ("variant", "plain"),
    [
        ("أين", "اين"),  # hamza on alef
        ("إرجاع", "ارجاع"),  # hamza under alef
        ("آمن", "امن"),  # madda
        ("مُنْتَجٌ", "منتج"),  # harakat
        ("مـــرحبا", "مرحبا"),  # tatweel
        ("شحنة", "شحنه"),  # taa marbuta
        ("مستشفى", "مستشفي"),  # alef maqsura
        ("مسؤول", "مسوول"),  # hamza on waw
        ("سائق", "سايق"),  # hamza on yaa
        ("الطلب", "طلب"),  # definite article
        ("والطلب", "طلب"),
        ("بالبريد", "بريد"),
        ("١٢٣٤", "1234"),  # Arabic-Indic digits
        ("۱۲۳", "123"),  # Persian digits
    ],
)
def test_arabic_variants_fold_to_one_form(variant, plain):
    assert terms(variant) == terms(plain)


def test_chinese_runs_become_bigrams_and_a_final_unigram():
    assert terms("我的订单") == ["我的", "的订", "订单", "单"]


def test_traditional_chinese_folds_to_simplified():
    assert terms("訂單還沒到") == terms("订单还没到")


def test_japanese_kana_and_half_width_kana():
    assert terms("ｽﾆｰｶｰ") == terms("スニーカー")
    assert "スニ" in terms("スニーカーが届きません")


def test_mixed_scripts_split_at_the_script_boundary():
    assert terms("iPhone充电器") == ["iphone", "充电", "电器", "器"]


def test_spans_point_at_the_original_text():
    text = "Mon COLIS est arrivé: 订单号 ４５"
    for term in analyze(text):
        assert text[term.start : term.end]
    assert [(t.text, text[t.start : t.end]) for t in analyze(text)][:4] == [
        ("mon", "Mon"),
        ("colis", "COLIS"),
        ("est", "est"),
        ("arrive", "arrivé"),
    ]
    bigrams = [(t.text, text[t.start : t.end]) for t in analyze(text) if t.kind == "bigram"]
    assert bigrams == [("订单", "订单"), ("单号", "单号")]


def test_index_terms_are_the_analyzer_terms_on_real_tweets():
    with open(TWEETS, newline="") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)][:1500]
    others = [
        "Ünïcödé mixed ascii",
        "订单 order ١٢٣",
        "你好，我买的耳机还没到，订单号 A1234。",
        "訂單 ３４５ 的耳機壞了",
        "مرحبا، أين طلبي رقم 1234؟ والطلب بالبريد",
        "注文番号ｱｲｳの商品がまだ届きません",
        "㍿ abc㍿def",
        "Straße café naïve",
        "snake_case_é __über__ ٱلْكِتَاب_ok",  # underscores separate, accented or not
        "e\u0301_x a\u0301b",  # a combining mark stays in its word
    ]
    for text in [*texts, *others]:
        assert index_terms(text) == terms(text)


def test_nothing_searchable_yields_no_terms():
    assert analyze("") == []
    assert analyze("!!! ... 🙂 —") == []


# --- queries ---------------------------------------------------------------------------------


def phrases(query: str) -> list[list[tuple[str, bool]]]:
    return [[(t.text, t.prefix) for t in phrase] for phrase in parse(query).phrases]


def test_each_word_is_a_phrase_and_only_the_last_one_typed_is_a_prefix():
    assert phrases("Refund late tv 2024") == [
        [("refund", False)],
        [("late", False)],
        [("tv", False)],
        [("2024", False)],
    ]
    assert phrases("refund late") == [[("refund", False)], [("late", True)]]
    assert phrases("耳 refund") == [[("耳", True)], [("refund", True)]]


def test_a_piece_with_separators_is_one_phrase_whose_last_word_may_be_unfinished():
    assert phrases("john.doe@exam") == [[("john", False), ("doe", False), ("exam", True)]]
    assert phrases("123-1234567-1234567") == [
        [("123", False), ("1234567", False), ("1234567", False)]
    ]


def test_quoted_text_is_one_phrase():
    assert phrases('"never arrived" ok') == [
        [("never", False), ("arrived", False)],
        [("ok", False)],
    ]
    assert phrases('ok "never arrived"') == [
        [("ok", False)],
        [("never", False), ("arrived", True)],
    ]


def test_chinese_query_is_the_phrase_of_its_bigrams():
    assert phrases("订单号") == [[("订单", False), ("单号", False)]]
    assert phrases("号") == [[("号", True)]]
    # The run-final character stays when more follows, as it does in the document.
    assert phrases("充电器iPhone") == [
        [("充电", False), ("电器", False), ("器", False), ("iphone", True)]
    ]


def test_empty_and_symbol_only_queries_parse_to_nothing():
    assert parse("   ").is_empty
    assert parse('"" ?!').is_empty


def test_postgres_documents_number_terms_and_keep_the_last_position_for_the_rest():
    from kefu.search.engines import MAX_POSITION, PostgresEngine

    terms = [f"w{n}" for n in range(MAX_POSITION + 3)]
    document = PostgresEngine().encode(terms, key=1).split(" ")
    assert document[:2] == ["'w0':1", "'w1':2"]
    assert document[MAX_POSITION - 1] == f"'w{MAX_POSITION - 1}':{MAX_POSITION}"
    assert document[MAX_POSITION : MAX_POSITION + 3] == [
        f"'w{n}':{MAX_POSITION}" for n in range(MAX_POSITION, MAX_POSITION + 3)
    ]
    assert PostgresEngine().encode([], key=1) == PostgresEngine().encode(["x"], key=1)[6:]


@pytest.mark.parametrize("engine_class", ["SqliteEngine", "PostgresEngine"])
def test_a_document_encoded_in_two_steps_is_the_same_document(engine_class):
    # A received message's terms are encoded before it has an id (outside the storing
    # transaction) and completed inside: the result must not depend on the split.
    from kefu.search import engines

    engine = getattr(engines, engine_class)()
    for terms in ([], ["kettle"], ["the", "kettle", "退款", "الطلب"]):
        for key, inbox in ((1, 7), (123_456, None)):
            assert engine.complete(engine.encode_terms(terms), key, inbox) == engine.encode(
                terms, key, inbox
            )
