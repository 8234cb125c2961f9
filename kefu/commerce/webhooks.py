"""Store-platform webhooks: verified, stored and acknowledged in the request; processed later.

**At the door** (:func:`receive`, one path for every platform): the raw body is checked against
the platform's signature header (base64 HMAC-SHA256 with the store's webhook secret, constant
time; a store without a secret accepts nothing) before anything is parsed, then stored as a
:class:`WebhookDelivery` keyed by the platform's event / delivery id. A repeat of an id already
stored (a retry, a replay) answers ``{"status": "duplicate"}`` and stores nothing. The answer is
200 at once: processing never makes the platform wait or time out.

**Off the request path** (:func:`drain`, task ``kefu.commerce.tasks.drain_webhooks``): pending
deliveries are processed in arrival order, ``BATCH`` per transaction, each in its own savepoint:
one that fails rolls back alone, keeps its row with the ``error`` and is tried again after a
backoff (``backoff``), up to ``MAX_ATTEMPTS``; after that it stays visibly failed until
:func:`replay`. One drain runs at a time (a lease, :mod:`kefu.commerce.jobs`) so deliveries are
applied in order. The request path asks for a drain through :func:`poke` (at most one enqueue
per ``WINDOW`` per process); the commerce tick drains too, which is also what picks up retries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from kefu.commerce import jobs
from kefu.commerce.models import Store, WebhookDelivery
from kefu.core.drains import DrainPoke
from kefu.core.errors import InvalidInput

logger = logging.getLogger(__name__)

MAX_BODY = 5 * 1024 * 1024
LEASE_NAME = "webhooks"
BATCH = 200
MAX_ROUNDS = 50
WINDOW = 0.2
# Attempt n waits BACKOFF_SECONDS * 4**(n-1): 30 s, 2 min, 8 min, 32 min, 2 h, then 6 h, so a
# fulfilment that arrived before its order, or a bug fixed by a deploy, is caught up.
MAX_ATTEMPTS = 8
BACKOFF_SECONDS = 30
MAX_BACKOFF = timedelta(hours=6)

# Called with the delivery's store (None for a provider serving every store) and its payload.
Handler = Callable[[Any, dict[str, Any]], None]


def _no_ping(body: bytes, topic: str) -> bool:
    return False


@dataclass(frozen=True)
class Source:
    """How one platform signs, names and identifies its webhooks, and what each topic does.

    The topic and event id come from headers (``topic_header``, the first of ``id_headers``)
    or, for providers that put them in the body, from its top-level fields (``topic_field``,
    ``id_field``). A source with ``account_secret`` is not per store: one secret (the
    provider account's) signs every delivery, and the rows have no store.
    """

    platform: str
    signature_header: str
    handlers: Mapping[str, Handler]
    topic_header: str = ""
    id_headers: tuple[str, ...] = ()
    topic_field: str = ""
    id_field: str = ""
    account_secret: Callable[[], str | None] | None = None
    # A delivery answered without a signature or a row (WooCommerce's creation ping).
    is_ping: Callable[[bytes, str], bool] = field(default=_no_ping)

    def identify(self, request: HttpRequest, payload: dict[str, Any]) -> tuple[str, str]:
        """(topic, event id) of a delivery; empty strings when missing."""
        topic = request.headers.get(self.topic_header, "") if self.topic_header else ""
        event_id = next((request.headers[h] for h in self.id_headers if request.headers.get(h)), "")
        if self.topic_field:
            topic = str(payload.get(self.topic_field) or "")
        if self.id_field:
            event_id = str(payload.get(self.id_field) or "")
        return topic, event_id


_sources: dict[str, Source] = {}


def register(source: Source) -> Source:
    _sources[source.platform] = source
    return source


def signature_valid(secret: str, body: bytes, header: str) -> bool:
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return bool(secret) and hmac.compare_digest(expected, header.encode())


# --- at the door ---------------------------------------------------------------------------------


def receive(request: HttpRequest, source: Source, store_id: int | None = None) -> HttpResponse:
    """Verify, store, acknowledge (the view of every platform's webhook endpoint)."""
    body = request.body
    if len(body) > MAX_BODY:
        return JsonResponse({"error": "body too large"}, status=413)
    secret = _secret(store_id, source)
    if secret is None:
        return JsonResponse({"error": "unknown store"}, status=404)
    if source.is_ping(body, request.headers.get(source.topic_header, "")):
        return JsonResponse({"status": "pong"})
    if not signature_valid(secret, body, request.headers.get(source.signature_header, "")):
        return JsonResponse({"error": "bad signature"}, status=401)
    try:
        text = body.decode("utf-8")
        payload = json.loads(text)
        if not isinstance(payload, dict):
            raise ValueError("not an object")
    except ValueError:
        return JsonResponse({"error": "body is not a JSON object"}, status=400)
    topic, event_id = source.identify(request, payload)
    if not event_id or not topic:
        return JsonResponse({"error": "missing event id or topic"}, status=400)
    delivery = WebhookDelivery(
        store_id=store_id, platform=source.platform, event_id=event_id[:128], topic=topic[:64],
        payload=text,
    )  # fmt: skip
    if not _stored(delivery):
        if store_id is not None and not _store_exists(store_id):
            return JsonResponse({"error": "unknown store"}, status=404)  # deleted meanwhile
        return JsonResponse({"status": "duplicate"})
    poke()
    return JsonResponse({"status": "accepted"})


def endpoint(source: Source) -> Callable[..., HttpResponse]:
    """The webhook view of ``source``: ``POST …/<store_id>``, or ``POST …`` without a store."""

    @csrf_exempt
    @require_POST
    def webhook(request: HttpRequest, store_id: int | None = None) -> HttpResponse:
        return receive(request, source, store_id)

    return webhook


# (store id or None, platform) -> (valid until, the secret; None: no such store or account).
_secrets: dict[tuple[int | None, str], tuple[float, str | None]] = {}
SECRET_TTL = 5.0


def _secret(store_id: int | None, source: Source) -> str | None:
    """The secret signing ``source``'s deliveries (the store's, or the provider account's), kept
    SECRET_TTL seconds per process: a burst of deliveries costs one query and one decryption,
    and a changed secret applies within seconds."""
    now = time.monotonic()
    key = (store_id, source.platform)
    cached = _secrets.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    secret: str | None = None
    if source.account_secret is not None:
        secret = source.account_secret() if store_id is None else None
    elif store_id is not None:
        row = Store.objects.filter(pk=store_id, platform=source.platform).only("webhook_secret")
        store = row.first()
        secret = store.webhook_secret if store is not None else None
    if len(_secrets) > 10_000:
        _secrets.clear()
    _secrets[key] = (now + SECRET_TTL, secret)
    return secret


def _store_exists(store_id: int) -> bool:
    _secrets.clear()
    return Store.objects.filter(pk=store_id).exists()


def _stored(delivery: WebhookDelivery) -> bool:
    """Insert ``delivery``; False when its event id is already stored. In autocommit (a
    request) the insert is its own transaction, one round trip; inside a caller's transaction
    a savepoint keeps a refused insert from breaking it."""
    try:
        if connection.in_atomic_block:
            with transaction.atomic():
                delivery.save(force_insert=True)
        else:
            delivery.save(force_insert=True)
    except IntegrityError:
        return False
    return True


# --- asking for a drain --------------------------------------------------------------------------


def is_sync() -> bool:
    """Process at once in the request's thread (the immediate task backend, or a setting)."""
    if getattr(settings, "KEFU_COMMERCE_WEBHOOKS_SYNC", False):
        return True
    return str(settings.TASKS["default"].get("BACKEND", "")).endswith("ImmediateBackend")


# Ask for a drain soon (see kefu.core.drains): after each stored row, from the request.
poke = DrainPoke(
    "kefu.commerce.tasks.drain_webhooks",
    window=WINDOW,
    drain=lambda: drain(),
    is_sync=lambda: is_sync(),
    on_failure="could not enqueue the webhook drain (the commerce tick drains too: never lost)",
)


# --- processing ----------------------------------------------------------------------------------


def backoff(attempt: int) -> timedelta:
    """How long to wait after failed attempt number ``attempt`` (1-based)."""
    return min(timedelta(seconds=BACKOFF_SECONDS * 4 ** (attempt - 1)), MAX_BACKOFF)


def pending(now: datetime | None = None) -> Any:
    """Deliveries due for processing, oldest first."""
    now = now or timezone.now()
    return (
        WebhookDelivery.objects.filter(processed_at__isnull=True, attempts__lt=MAX_ATTEMPTS)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("pk")
    )


def drain(*, batch: int = BATCH) -> int:
    """Process every due delivery; how many were looked at. Returns 0 at once when another
    drain holds the lease (it goes round once more for what this one was asked to do)."""
    owner = uuid.uuid4().hex
    if not jobs.acquire(LEASE_NAME, owner):
        return 0
    seen = 0
    try:
        for _ in range(MAX_ROUNDS):
            count = process_batch(batch)
            seen += count
            if count < batch and jobs.release(LEASE_NAME, owner):
                owner = ""
                break
            jobs.extend(LEASE_NAME, owner)
    finally:
        if owner:
            jobs.drop(LEASE_NAME, owner)
            if seen and not is_sync():
                poke()  # rounds left over (or an error): go on in a fresh drain
    return seen


def process_batch(batch: int = BATCH) -> int:
    """Process up to ``batch`` due deliveries in one transaction; how many were looked at."""
    now = timezone.now()
    rows = list(pending(now)[:batch])
    if rows:
        stores = Store.objects.in_bulk({row.store_id for row in rows} - {None})
        _process(rows, stores, now)
    return len(rows)


def _process(rows: list[WebhookDelivery], stores: dict[Any, Store], now: datetime) -> None:
    """Apply ``rows`` in one transaction. The usual case, where all succeed, costs no savepoint
    of its own; when one fails, the batch is rolled back and done again with a savepoint per
    delivery, so the failure is recorded alone and the others are applied."""
    try:
        with transaction.atomic():
            for row in rows:
                _handle(row, stores.get(row.store_id))
            _done(rows, now)
        return
    except Exception as exc:
        # Sorted out delivery by delivery below (each failure is logged and recorded there).
        logger.info("a batch of %d deliveries failed (%s); one savepoint each", len(rows), exc)
    failed: list[tuple[WebhookDelivery, str]] = []
    try:
        with transaction.atomic():
            done = []
            for row in rows:
                error = _apply(row, stores.get(row.store_id))
                if error is None:
                    done.append(row)
                else:
                    failed.append((row, error))
            _done(done, now)
    except DatabaseError as exc:
        # The batch's own transaction failed (a deadlock, a lost connection): nothing of it
        # was committed. Alone, a delivery records the error; in a batch, each goes alone.
        if len(rows) > 1:
            for row in rows:
                _process([row], stores, now)
            return
        failed = [(rows[0], f"{type(exc).__name__}: {exc}")]
    for row, error in failed:
        _failed(row, error, now)


def _handle(row: WebhookDelivery, store: Store | None) -> None:
    source = _sources.get(row.platform)
    handler = source.handlers.get(row.topic) if source else None
    if handler is not None:  # else a topic kefu does not use: acknowledged, nothing to do
        handler(store, json.loads(row.payload))


def _done(rows: list[WebhookDelivery], now: datetime) -> None:
    WebhookDelivery.objects.filter(pk__in=[row.pk for row in rows]).update(
        processed_at=now, error=""
    )


def _apply(row: WebhookDelivery, store: Store | None) -> str | None:
    """Run the delivery's handler in a savepoint; None when done, else the error to record."""
    try:
        with transaction.atomic():
            _handle(row, store)
    except InvalidInput as exc:
        # Signed but unusable now (often: a fulfilment before its order): retried later.
        logger.warning("%s %s (delivery %s) refused: %s", row.platform, row.topic, row.pk, exc)
        return exc.message
    except Exception as exc:
        logger.exception("%s %s (delivery %s) failed", row.platform, row.topic, row.pk)
        return f"{type(exc).__name__}: {exc}"
    return None


def _failed(row: WebhookDelivery, error: str, now: datetime) -> None:
    attempts = row.attempts + 1
    WebhookDelivery.objects.filter(pk=row.pk).update(
        attempts=attempts, error=error[:2000], next_attempt_at=now + backoff(attempts)
    )
    if attempts >= MAX_ATTEMPTS:
        logger.error(
            "%s %s (delivery %s) gave up after %d attempts: %s",
            row.platform, row.topic, row.pk, attempts, error,
        )  # fmt: skip


def failed_deliveries() -> Any:
    """Deliveries that used up their attempts: shown to admins, replayed by :func:`replay`."""
    return WebhookDelivery.objects.filter(processed_at__isnull=True, attempts__gte=MAX_ATTEMPTS)


def replay(*, store: Store | None = None, ids: list[int] | None = None) -> int:
    """Make failed (or, with ``ids``, any) deliveries pending again from their stored payload;
    how many. Processing is idempotent, so replaying a processed delivery is harmless."""
    rows = WebhookDelivery.objects.all() if ids is not None else failed_deliveries()
    if ids is not None:
        rows = rows.filter(pk__in=ids)
    if store is not None:
        rows = rows.filter(store=store)
    count = rows.update(processed_at=None, attempts=0, next_attempt_at=None)
    if count:
        poke()
    return count
