"""Text analysis for search: the one function that turns text into index terms.

``analyze`` is used for indexing *and* for querying, so a query matches a message exactly when
both normalize to the same terms:

- NFKC (full-width and half-width forms fold: ``ＡＢＣ１２３`` -> ``abc123``), then casefold;
- Latin/Greek/Cyrillic accents folded (``café`` -> ``cafe``, ``Straße`` -> ``strasse``), plus the
  few letters NFD does not decompose (``ø ł đ æ œ þ``);
- Arabic: diacritics (harakat, superscript alef, Quranic marks) and tatweel removed; alef
  variants (أ إ آ ٱ) -> ا, ؤ -> و, ئ -> ي, ى -> ي, ة -> ه, bare hamza dropped, Persian
  yeh/keheh -> Arabic; the definite article (ال and its clitic forms وال بال كال فال لل)
  folded off, so ``الطلب`` finds ``طلب``; Arabic-Indic digits -> ASCII digits;
- Chinese: Traditional folds to Simplified (OpenCC's phrase-aware t2s), so ``订单`` finds
  ``訂單`` and the other way round;
- Chinese, Japanese kana and other scripts written without spaces (Thai, Lao, Khmer, Myanmar):
  every run becomes its overlapping character bigrams plus its last character as a unigram.
  A query of two or more characters is the phrase of its bigrams; a single character is a prefix
  query, which matches the bigrams starting with it and the run-final unigram, i.e. every
  occurrence of that character;
- everything else: words of letters, digits and marks; no stemming and no stop words.

Terms carry the span of the original text they come from, for highlighting.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import NamedTuple

import opencc

# Scripts written without spaces between words, segmented into character bigrams: Han (CJK
# radicals, extension A, unified, compatibility, extensions B+), kana (with half-width forms and
# voiced sound marks), Thai, Lao, Myanmar, Khmer; 々 〆 〇 〻 and the prolonged sound mark ー.
_UNSPACED = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u2e80-\u2fdf\u3005-\u3007\u303b"
    "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U0003134f"
)


def _marks() -> str:
    """A character class body of every combining mark (category M*) in the BMP."""
    spans: list[tuple[int, int]] = []
    for code in range(0x10000):
        if unicodedata.category(chr(code))[0] == "M":
            if spans and spans[-1][1] == code - 1:
                spans[-1] = (spans[-1][0], code)
            else:
                spans.append((code, code))
    return "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in spans)


_MARKS = _marks()
# Letters, digits and marks (the tatweel is a letter modifier, so it stays inside Arabic words);
# everything else separates. A run mixing scripts ("iPhone充电器") is split further below.
_RUNS = re.compile(rf"(?:[^\W_]|[{_MARKS}])+")
_UNSPACED_CHAR = re.compile(rf"[{_UNSPACED}]")
_HAN = re.compile(r"[\u2e80-\u2fdf\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_T2S = opencc.OpenCC("t2s")
_SCRIPT_RUNS = re.compile(rf"([{_UNSPACED}][{_UNSPACED}{_MARKS}]*)|([^{_UNSPACED}]+)")


def _fold_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    # Combining diacritical marks (after NFD): accents of Latin, Greek, Cyrillic.
    for code in range(0x0300, 0x0370):
        table[code] = None
    # Arabic diacritics: harakat, tanween, shadda, sukun, superscript alef, Quranic annotations.
    for code in [*range(0x0610, 0x061B), *range(0x064B, 0x0660), 0x0670, *range(0x06D6, 0x06EE)]:
        table[code] = None
    table[0x0640] = None  # tatweel (kashida): a stretching stroke, not a letter
    for alef in "أإآٱ":
        table[ord(alef)] = "ا"
    table.update(
        {
            ord("ؤ"): "و",
            ord("ئ"): "ي",
            ord("ى"): "ي",
            ord("ة"): "ه",
            ord("ء"): None,
            ord("ی"): "ي",  # Persian yeh
            ord("ک"): "ك",  # keheh
        }
    )
    for digit in range(10):
        table[0x0660 + digit] = str(digit)  # Arabic-Indic
        table[0x06F0 + digit] = str(digit)  # Extended Arabic-Indic (Persian, Urdu)
    table.update(
        {
            ord("ø"): "o",
            ord("ł"): "l",
            ord("đ"): "d",
            ord("ħ"): "h",
            ord("ı"): "i",
            ord("æ"): "ae",
            ord("œ"): "oe",
            ord("þ"): "th",
            ord("ð"): "d",
        }
    )
    return table


_FOLD = _fold_table()
_ARTICLES = ("وال", "بال", "كال", "فال", "ال", "لل")


class Term(NamedTuple):
    """One index term and the span ``[start, end)`` of the analyzed text it comes from.

    ``kind``: "word" (letters/digits), "bigram" or "unigram" (unspaced scripts). ``chunk`` numbers
    the whitespace-separated pieces of the text, so a query keeps each piece one phrase.
    """

    text: str
    start: int
    end: int
    kind: str
    chunk: int


WORD, BIGRAM, UNIGRAM = "word", "bigram", "unigram"


def fold_word(word: str) -> str:
    """Normalize one word (no spaces) to its index form; '' when nothing searchable is left."""
    if word.isascii():
        return word.lower()
    return _fold_word(word)


# Words repeat (a language's common words make most of any text): remembering their folded
# forms halves the cost of analyzing accented or Arabic text.
@functools.lru_cache(maxsize=65536)
def _fold_word(word: str) -> str:
    value = unicodedata.normalize("NFKC", word).casefold()
    value = unicodedata.normalize("NFD", value).translate(_FOLD)
    value = unicodedata.normalize("NFC", value)
    for article in _ARTICLES:
        if value.startswith(article) and len(value) - len(article) >= 2:
            value = value[len(article) :]
            break
    return value


def analyze(text: str) -> list[Term]:
    """The terms of ``text`` in order, with their spans. Pure; safe on any input."""
    return [Term._make(raw) for raw in scan(text)]


def index_terms(text: str) -> list[str]:
    """The terms to index for ``text``, in order (positions matter for phrases).

    Exactly ``[term.text for term in analyze(text)]``, faster: this runs for every message
    written. ASCII text (most of it in many shops) takes a shortcut with the same result: its
    runs are [A-Za-z0-9]+, lowercased.
    """
    if text.isascii():
        return _ASCII_RUNS.findall(text.lower())
    # Spans and chunks are not needed here: only the runs that are not ASCII go through the
    # analyzer's per-run work (in a tweet with one emoji or curly quote, most runs are ASCII).
    out: list[str] = []
    for run in _runs(text):
        if run.isascii():
            out.append(run.lower())
        else:
            out.extend(_run_terms(run))
    return out


# A language's accented words repeat like its other words: a run's terms are remembered whole
# (a third of the time of analyzing accented or Arabic text).
@functools.lru_cache(maxsize=65536)
def _run_terms(run: str) -> tuple[str, ...]:
    raw: list[_Raw] = []
    _scan_run(run, 0, 0, raw)
    return tuple(item[0] for item in raw)


_ASCII_RUNS = re.compile(r"[a-z0-9]+")
# _RUNS without its alternation, which costs Python's regex engine a branch per character:
# word characters or marks, on the text with its underscores (word characters for the regex,
# separators for search: handles, snake_case) turned to spaces. 30% faster on accented text.
_WORDS_AND_MARKS = re.compile(rf"[\w{_MARKS}]+")


def _runs(text: str) -> list[str]:
    """``_RUNS.findall(text)``, faster."""
    return _WORDS_AND_MARKS.findall(text.replace("_", " ") if "_" in text else text)


_Raw = tuple[str, int, int, str, int]


def scan(text: str) -> list[tuple[str, int, int, str, int]]:
    """:func:`analyze` as plain tuples (text, start, end, kind, chunk): for the hot paths."""
    out: list[_Raw] = []
    chunk = 0
    last_end = 0
    for match in _RUNS.finditer(text):
        start, end = match.span()
        if start > last_end:
            gap = text[last_end:start]
            # Any whitespace (isprintable is False for every space but the ASCII one) ends a chunk.
            if " " in gap or not gap.isprintable():
                chunk += 1
        last_end = end
        run = match.group()
        if run.isascii():
            out.append((run.lower(), start, end, WORD, chunk))
        else:
            _scan_run(run, start, chunk, out)
    return out


def _scan_run(run: str, start: int, chunk: int, out: list[_Raw]) -> None:
    """The terms of one run that is not ASCII, starting at ``start`` of the text."""
    if _UNSPACED_CHAR.search(run) is None:
        _word(run, start, start + len(run), chunk, out)
        return
    for part in _SCRIPT_RUNS.finditer(run):
        offset = start + part.start()
        if part.group(1):
            _unspaced(part.group(1), offset, chunk, out)
        else:
            _word(part.group(2), offset, start + part.end(), chunk, out)


def _word(run: str, start: int, end: int, chunk: int, out: list[_Raw]) -> None:
    folded = fold_word(run)
    if not folded:
        return
    if _RUNS.fullmatch(folded) and _UNSPACED_CHAR.search(folded) is None:
        out.append((folded, start, end, WORD, chunk))
        return
    # NFKC may turn one run into several words or into an unspaced script ("㍿" -> "株式会社").
    for piece in _RUNS.findall(folded):
        if _UNSPACED_CHAR.search(piece):
            _unspaced(piece, start, chunk, out, span=(start, end))
        else:
            out.append((piece, start, end, WORD, chunk))


@functools.lru_cache(maxsize=65536)
def _fold_unspaced(run: str) -> str:
    folded = unicodedata.normalize("NFKC", run).casefold().translate(_FOLD)
    return _T2S.convert(folded) if _HAN.search(folded) else folded


def _unspaced(
    run: str, start: int, chunk: int, out: list[_Raw], span: tuple[int, int] | None = None
) -> None:
    folded = _fold_unspaced(run)
    if not folded:
        return
    # Per-character spans only when folding kept the length (half-width kana does not).
    exact = span is None and len(folded) == len(run)
    whole = span or (start, start + len(run))
    for i in range(len(folded) - 1):
        a, b = (start + i, start + i + 2) if exact else whole
        out.append((folded[i : i + 2], a, b, BIGRAM, chunk))
    last = len(folded) - 1
    a, b = (start + last, start + last + 1) if exact else whole
    out.append((folded[last], a, b, UNIGRAM, chunk))
