"""Who a widget visitor is, whether they are there, and how often they may write.

A visitor is a random id kept in the storefront's localStorage, with a token kefu signed for
that id and that inbox: the token proves "I am visitor v of inbox i" and nothing more. The
visitor id becomes the customer identity ``chat_visitor`` and the thread key of the visitor's
conversations, which is all the history a token can read: an email typed into the pre-chat
form is never a key to anyone's history (anybody can type anybody's address).
"""

from __future__ import annotations

import hashlib
import time
import uuid

from django.core import signing
from django.core.cache import cache, caches

from kefu.accounts import ratelimit

# A visitor counts as present while a socket of theirs pinged within this many seconds (the
# widget pings every 25 s); a reply to an absent visitor with an email goes out by email too.
ONLINE_SECONDS = 60
MESSAGES_PER_MINUTE = 30


def _signer(inbox_id: int) -> signing.Signer:
    return signing.Signer(salt=f"kefu.chat.visitor.{inbox_id}")


def new_visitor() -> str:
    return uuid.uuid4().hex


def issue_token(inbox_id: int, visitor: str) -> str:
    return _signer(inbox_id).sign(visitor)


def visitor_of(inbox_id: int, token: object) -> str | None:
    """The visitor id a token proves for this inbox, or None (forged, or another inbox's)."""
    if not isinstance(token, str) or len(token) > 200:
        return None
    try:
        visitor = _signer(inbox_id).unsign(token)
    except signing.BadSignature:
        return None
    return visitor if len(visitor) == 32 and visitor.isalnum() else None


def thread_key(visitor: str) -> str:
    return f"visitor:{visitor}"


def mark_online(visitor: str) -> None:
    cache.set(f"chat.online.{visitor}", 1, timeout=ONLINE_SECONDS)


def is_online(visitor: str) -> bool:
    return cache.get(f"chat.online.{visitor}") is not None


def new_conversation_limit(per_hour: int) -> ratelimit.Limit:
    return ratelimit.Limit("chat-new", per_hour, 3600)


def message_limit() -> ratelimit.Limit:
    return ratelimit.Limit("chat-message", MESSAGES_PER_MINUTE, 60)


def allow(limit: ratelimit.Limit, subject: str) -> bool:
    """Count one use of ``limit`` by ``subject`` in the current window; False past the limit.

    A fixed-window counter in the shared ``ratelimit`` cache (one add and one incr), not the
    sign-in limit's slots: a limit of thousands per hour would be thousands of keys per check.
    The counter's increment is atomic on Redis; on the database cache two processes may both
    pass at the very edge of the limit, which is harmless here.
    """
    cache = caches[ratelimit.CACHE_ALIAS]
    window = int(time.time()) // limit.window_seconds
    digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
    key = f"{limit.scope}:{digest}:{window}"
    cache.add(key, 0, timeout=limit.window_seconds)
    try:
        used = cache.incr(key)
    except ValueError:  # expired between add and incr: this use opens the next window
        cache.add(key, 1, timeout=limit.window_seconds)
        used = 1
    return used <= limit.max_failures
