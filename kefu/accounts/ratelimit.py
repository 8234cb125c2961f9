"""Sign-in rate limit: at most N failures per window per client address and per username.

Counters live in the ``ratelimit`` cache (settings.CACHES): Redis at scale, a database table
otherwise, so every server process sees the same counts (a per-process locmem cache would give
each WSGI worker its own five attempts).

A failure takes one of N *slots* of its key with ``cache.add`` (an atomic "set if absent": SET NX
on Redis, a primary-key insert in the database table), each slot expiring ``window`` seconds
after the failure that took it. A key whose N slots are all taken is blocked until the oldest
one expires: a sliding window of N failures, without a read-modify-write race between
concurrent attempts (``incr`` on the database cache is a get and a set).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest

CACHE_ALIAS = "ratelimit"


@dataclass(frozen=True)
class Limit:
    scope: str
    max_failures: int
    window_seconds: int

    def slots(self, subject: str) -> list[str]:
        # Hashed: usernames are user input (any length, any character) and cache keys are not.
        digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
        return [f"{self.scope}:{digest}:{slot}" for slot in range(self.max_failures)]


def login_limit() -> Limit:
    return Limit("login", settings.KEFU_LOGIN_MAX_FAILURES, settings.KEFU_LOGIN_WINDOW_SECONDS)


def _cache() -> BaseCache:
    return caches[CACHE_ALIAS]


def is_blocked(limit: Limit, subjects: list[str]) -> bool:
    """True when any of ``subjects`` has used up its failures (one cache round trip)."""
    keys = {subject: limit.slots(subject) for subject in subjects}
    taken = _cache().get_many([key for slots in keys.values() for key in slots])
    return any(all(key in taken for key in slots) for slots in keys.values())


def record_failure(limit: Limit, subjects: list[str]) -> None:
    """Count one failure against each of ``subjects`` (a full key stays full)."""
    cache = _cache()
    for subject in subjects:
        for key in limit.slots(subject):
            if cache.add(key, 1, timeout=limit.window_seconds):
                break


def clear(limit: Limit, subjects: list[str]) -> None:
    _cache().delete_many([key for subject in subjects for key in limit.slots(subject)])


def forget_all() -> None:
    """Drop every counter. On Redis only this cache's keys: ``clear()`` would flush the whole
    Redis database, task queues included."""
    cache = _cache()
    if isinstance(cache, RedisCache):
        client = cache._cache.get_client(write=True)
        for key in client.scan_iter(match=cache.make_key("*"), count=1000):
            client.delete(key)
    else:
        cache.clear()


def client_address(request: HttpRequest) -> str:
    """The address a request came from, as the rate limit counts it.

    Behind ``KEFU_TRUSTED_PROXIES`` reverse proxies, the address the nearest trusted proxy saw
    (counted from the right of X-Forwarded-For: entries further left are the client's to forge).
    An IPv6 address counts as its /64 network, which one subscriber usually holds whole.
    """
    return _client(
        request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR", "")
    )


def scope_client_address(scope: dict) -> str:
    """``client_address`` for an ASGI scope (a websocket has no HttpRequest)."""
    client = scope.get("client") or ("", 0)
    forwarded = ""
    for name, value in scope.get("headers") or ():
        if name == b"x-forwarded-for":
            forwarded = value.decode("latin-1")
    return _client(str(client[0] or ""), forwarded)


def _client(remote: str, forwarded_header: str) -> str:
    address = remote
    proxies = settings.KEFU_TRUSTED_PROXIES
    if proxies:
        forwarded = [part.strip() for part in forwarded_header.split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= proxies:
            address = forwarded[-proxies]
    return _normalized(address)


def _normalized(address: str) -> str:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:100] or "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def login_subjects(request: HttpRequest, username: str) -> list[str]:
    """The keys a sign-in attempt counts against: its address, and the username tried."""
    return [f"address:{client_address(request)}", f"user:{username.strip().lower()[:150]}"]
