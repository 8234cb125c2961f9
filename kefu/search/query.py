"""Parsing what someone typed into the search box into phrases of index terms.

A query is analyzed by the same :func:`kefu.search.text.analyze` as the messages. Each
whitespace-separated piece (or "a quoted piece") is one phrase: its terms must appear next to
each other and in order (``123-1234567-1234567``, ``john@example.com``, ``订单号``); phrases are
ANDed. Within a phrase:

- the last word of the query (the one being typed), when it has three or more characters and
  is not a number, matches as a prefix: ``refund`` finds ``refunded``, ``طلب`` finds ``طلبات``;
  other words match whole (no stemming);
- an unspaced-script run (Chinese, Japanese, Thai...) of two or more characters is the phrase of
  its bigrams; a single character is a prefix term (every bigram starting with it, plus the
  run-final unigram: every occurrence of the character). The run-final unigram stays in the
  phrase only when more terms follow it, since that is where the document has it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kefu.search.text import BIGRAM, UNIGRAM, WORD, Term, analyze

MIN_PREFIX = 3
MAX_PHRASES = 12
MAX_QUERY_CHARS = 200
_QUOTED = re.compile(r'"([^"]*)"')


@dataclass(frozen=True, slots=True)
class QueryTerm:
    text: str
    prefix: bool


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    raw: str
    phrases: list[list[QueryTerm]] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.phrases

    def terms(self) -> list[QueryTerm]:
        return [term for phrase in self.phrases for term in phrase]

    @property
    def has_prefixes(self) -> bool:
        return any(term.prefix for term in self.terms())

    def whole_words(self) -> ParsedQuery:
        """The same query with every prefix term matched whole (the cheap first try)."""
        phrases = [[QueryTerm(t.text, False) for t in phrase] for phrase in self.phrases]
        return ParsedQuery(raw=self.raw, phrases=phrases)


def parse(raw: str) -> ParsedQuery:
    """The phrases of ``raw`` (cut to MAX_QUERY_CHARS and MAX_PHRASES); may be empty."""
    raw = raw[:MAX_QUERY_CHARS]
    phrases: list[list[QueryTerm]] = []
    position = 0
    for quoted in _QUOTED.finditer(raw):
        phrases.extend(_chunks(raw[position : quoted.start()]))
        phrase = _phrase(analyze(quoted.group(1)))
        if phrase:
            phrases.append(phrase)
        position = quoted.end()
    phrases.extend(_chunks(raw[position:].replace('"', " ")))
    unique = list({tuple(p): p for p in _finished(phrases)}.values())
    return ParsedQuery(raw=raw, phrases=unique[:MAX_PHRASES])


def _finished(phrases: list[list[QueryTerm]]) -> list[list[QueryTerm]]:
    """Only the query's last word is being typed: the words before it end at a space, so
    they match whole. (A prefix costs the engines every posting of every word it starts: two
    common prefixes cost PostgreSQL 20 ms where a word and a prefix cost 3.) A lone CJK
    character stays a prefix wherever it is: that is how it matches its bigrams."""
    return [
        [QueryTerm(t.text, t.prefix and len(t.text) == 1) for t in phrase]
        if i < len(phrases) - 1
        else phrase
        for i, phrase in enumerate(phrases)
    ]


def _chunks(text: str) -> list[list[QueryTerm]]:
    by_chunk: dict[int, list[Term]] = {}
    for term in analyze(text):
        by_chunk.setdefault(term.chunk, []).append(term)
    return [p for p in (_phrase(terms) for terms in by_chunk.values()) if p]


def _phrase(terms: list[Term]) -> list[QueryTerm]:
    out: list[QueryTerm] = []
    for i, term in enumerate(terms):
        last = i == len(terms) - 1
        if term.kind == WORD:
            # Only the phrase's last word may be unfinished: the others end at a separator.
            prefix = last and len(term.text) >= MIN_PREFIX and not term.text.isdigit()
            out.append(QueryTerm(term.text, prefix))
        elif term.kind == BIGRAM:
            out.append(QueryTerm(term.text, False))
        elif term.kind == UNIGRAM:
            run_of_one = i == 0 or terms[i - 1].kind != BIGRAM
            if not last:
                out.append(QueryTerm(term.text, False))
            elif run_of_one:
                out.append(QueryTerm(term.text, True))
    return out
