"""Admission control for batch ingestion.

A batch request spends most of its CPU in Python (parsing and validating up to 500 messages,
building rows). Many of them at once in one process only take turns on the GIL and starve the
thread that is storing: with 16 server threads, 32 concurrent batch clients got a third of the
throughput that one batch at a time gets. Single messages are different: they mostly wait for
the combiner's leader, so they keep every thread (see docs/decisions.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

BATCH_PATH = "/api/v1/messages/batch"
# Batches handled at once per process. Measured with bench/ingest.py (2 workers, 32 clients):
# 1 gave SQLite 1835-1985 and PostgreSQL 1895-2035 messages/s; 2 gave 1535-1685 and 1890-1940;
# 4 gave 1695 and 1740. Parsing one batch while storing another does not pay for the GIL.
BATCH_CONCURRENCY = 1

_batch_slots = threading.BoundedSemaphore(BATCH_CONCURRENCY)


class BatchAdmissionMiddleware:
    """Lets at most BATCH_CONCURRENCY batch requests per process run; the others wait their turn
    (before their body is read), in arrival order as far as the OS scheduler allows."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path != BATCH_PATH:
            return self.get_response(request)
        with _batch_slots:
            return self.get_response(request)
