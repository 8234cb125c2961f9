"""Snippets: a window of a message around what matched, with the matches in ``<mark>``.

Every character of the message is escaped; the only markup in a snippet is our own ``<mark>``.
Matches are found with the same analysis as the index, so ``cafe`` marks ``Café``, ``اين``
marks ``أين`` and ``订单`` marks the two characters in ``我的订单号``.
"""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from kefu.search.query import ParsedQuery, QueryTerm
from kefu.search.text import BIGRAM, scan

SNIPPET_CHARS = 180
# Long messages are scanned for matches only this far; past it the snippet shows the start.
SCAN_CHARS = 4000


def snippet(text: str, query: ParsedQuery, width: int = SNIPPET_CHARS) -> SafeString:
    """An escaped, highlighted excerpt of ``text`` of about ``width`` characters."""
    text = " ".join(text[:SCAN_CHARS].split())
    spans = _merge(_matches(text, query.terms()))
    start = _window_start(text, spans, width)
    end = min(len(text), start + width)
    parts = ["…" if start > 0 else ""]
    cursor = start
    for a, b in spans:
        if b <= start or a >= end:
            continue
        a, b = max(a, start), min(b, end)
        parts.append(escape(text[cursor:a]))
        parts.append(f"<mark>{escape(text[a:b])}</mark>")
        cursor = b
    parts.append(escape(text[cursor:end]))
    if end < len(text):
        parts.append("…")
    return mark_safe("".join(parts))  # noqa: S308 - every piece of text above is escaped


def _matches(text: str, terms: list[QueryTerm]) -> list[tuple[int, int]]:
    if not terms:
        return []
    exact = {t.text for t in terms if not t.prefix}
    prefixes = tuple(t.text for t in terms if t.prefix)
    spans = []
    for term, start, end, kind, _ in scan(text):
        if term in exact:
            spans.append((start, end))
        elif prefixes and term.startswith(prefixes):
            if kind == BIGRAM and end - start == 2 and len(term) == 2:
                # A one-character query matched this bigram by its first character.
                matched = any(len(p) == 1 and term.startswith(p) for p in prefixes)
                spans.append((start, start + 1 if matched else end))
            else:
                spans.append((start, end))
    return spans


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def _window_start(text: str, spans: list[tuple[int, int]], width: int) -> int:
    if not spans or len(text) <= width:
        return 0
    first = spans[0][0]
    start = max(0, first - width // 4)
    # Start at a word boundary when one is near, not in the middle of a word.
    space = text.rfind(" ", max(0, start - 15), start + 1)
    if space > 0:
        start = space + 1
    return min(start, max(0, len(text) - width))
