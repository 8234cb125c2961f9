"""Garbage-collector settings for kefu's long-running processes (web and task workers).

A kefu process holds about 145,000 container objects once started (models, URL patterns, the API
schema, translations, the search and language tables), and CPython's full collection walks every
one of them. On the batch ingest path that was 8 full collections per 10,000 messages, ~100 µs
per message in all, each a pause of about 100 ms landing in some request's latency.
``gc.freeze()`` (made for this) moves what start-up built out of the collector's sight: measured
16-28 µs per message of collection left (bench/RESULTS.md, session 7).
"""

from __future__ import annotations

import gc

# Young objects are collected after this many new container objects instead of 700: a request
# storing 500 messages builds tens of thousands; collecting them 15 times less often changes
# nothing to what is freed (reference counting frees almost everything) and little to memory.
GEN0_THRESHOLD = 10_000


def settle_after_startup() -> None:
    """Load what requests would load lazily, then freeze it; call once the app is built."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (imports every URL module and builds the API)
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, older, oldest)
