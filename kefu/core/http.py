"""The one outbound HTTP client: every request kefu makes to another server goes through here.

Connectors, store platforms, carriers and outbound webhooks call :func:`request` (or
:func:`client` for a session with its own base URL and auth). What it guarantees:

- Timeouts on every request (connect 5 s, the rest 15 s by default).
- Retries with exponential backoff and jitter: connection failures always (nothing was sent),
  429/5xx answers and read timeouts only for idempotent methods unless ``retry_unsafe=True``
  (a provider that deduplicates by id can take a retried POST).
- No requests at private, loopback, link-local, multicast or reserved addresses (SSRF): the check
  runs when the socket connects, on the address actually used, so a DNS answer that changes
  between check and use (rebinding) and a redirect to an internal host are caught alike.
  ``settings.KEFU_HTTP_ALLOW_PRIVATE`` lists networks exempted (tests, closed networks).
- Proxy environment variables and .netrc are ignored: a proxy would hide the destination.
- Response bodies are capped (``max_bytes``), so a hostile server cannot exhaust memory.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import time
import typing
from collections.abc import Iterable

import httpcore
import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "DEFAULT_TIMEOUT",
    "BlockedDestination",
    "ResponseTooLarge",
    "client",
    "is_allowed_address",
    "request",
]

DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_REDIRECTS = 5
LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=10)
USER_AGENT = "kefu (+https://github.com/kefu)"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedDestination(ValueError):
    """The URL points at an address kefu must not reach (private, loopback, ...). Never retried."""


class ResponseTooLarge(ValueError):
    """The response body exceeded ``max_bytes``; the connection was dropped."""


def _allowed_networks() -> list[IPNetwork] | None:
    """The exempt networks from settings; None means every address is allowed ("*")."""
    entries = list(getattr(settings, "KEFU_HTTP_ALLOW_PRIVATE", []) or [])
    if "*" in entries:
        return None
    try:
        return [ipaddress.ip_network(entry, strict=False) for entry in entries]
    except ValueError as exc:
        raise ImproperlyConfigured(f"KEFU_HTTP_ALLOW_PRIVATE: {exc}") from None


def is_allowed_address(address: str) -> bool:
    """True when ``address`` (an IP literal) is public, or exempted by KEFU_HTTP_ALLOW_PRIVATE."""
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # ::ffff:127.0.0.1 is 127.0.0.1 on the wire.
        ip = ip.ipv4_mapped
    networks = _allowed_networks()
    if networks is None or any(ip in network for network in networks):
        return True
    return ip.is_global and not ip.is_multicast


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves the host itself and connects only to an allowed address."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        allowed = [address for address in addresses if is_allowed_address(address)]
        if not allowed or len(allowed) < len(addresses):
            # A name that resolves to any internal address is refused as a whole: picking the
            # public one would still let an attacker probe which names exist inside.
            raise BlockedDestination(f"{host} resolves to a private or reserved address")
        last_error: Exception | None = None
        for address in allowed:
            try:
                options = socket_options  # httpcore's own type; any iterable works
                return super().connect_tcp(address, port, timeout, local_address, options)  # type: ignore[arg-type]
            except httpcore.ConnectError as exc:
                last_error = exc
        assert last_error is not None
        raise last_error


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, limits: httpx.Limits = LIMITS) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(),
        )


def client(**kwargs: typing.Any) -> httpx.Client:
    """An ``httpx.Client`` with the guard, timeouts and no proxies; use it as a context manager.

    Accepts httpx.Client's keyword arguments (``base_url``, ``headers``, ``auth``...) except
    ``transport``, ``trust_env`` and ``proxy``. Retries and size caps apply only through
    :func:`request`; pass the client there as ``session``.
    """
    for forbidden in ("transport", "trust_env", "proxy", "mounts"):
        if forbidden in kwargs:
            raise TypeError(f"kefu.core.http.client does not take {forbidden!r}")
    headers = {"User-Agent": USER_AGENT, **dict(kwargs.pop("headers", None) or {})}
    kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
    return httpx.Client(
        transport=_GuardedTransport(),
        trust_env=False,
        headers=headers,
        max_redirects=MAX_REDIRECTS,
        **kwargs,
    )


def request(
    method: str,
    url: str,
    *,
    retries: int = 2,
    backoff: float = 0.5,
    max_backoff: float = 10.0,
    retry_unsafe: bool = False,
    follow_redirects: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    session: httpx.Client | None = None,
    **kwargs: typing.Any,
) -> httpx.Response:
    """Send one request with the guard, retrying transient failures; returns the last response.

    A 4xx/5xx answer is returned, not raised (after retries for 429/5xx): the caller decides
    what it means. Raises BlockedDestination (never retried), ResponseTooLarge, or the httpx
    error of the last attempt (``httpx.TimeoutException``, ``httpx.ConnectError``...).
    ``kwargs`` go to ``httpx.Client.build_request`` (``json``, ``content``, ``headers``...).
    """
    method = method.upper()
    may_resend = retry_unsafe or method in IDEMPOTENT_METHODS
    owned = session is None
    http = session or client()
    try:
        for attempt in range(retries + 1):
            last = attempt == retries
            try:
                response = _send_once(http, method, url, follow_redirects, max_bytes, kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
                if last:
                    raise
            except httpx.TimeoutException:
                if last or not may_resend:
                    raise
            else:
                if last or not may_resend or response.status_code not in RETRY_STATUSES:
                    return response
                _sleep(_delay(attempt, backoff, max_backoff, response))
                continue
            _sleep(_delay(attempt, backoff, max_backoff, None))
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        if owned:
            http.close()


def _check_scheme(url: httpx.URL) -> None:
    if url.scheme not in ("http", "https"):
        raise BlockedDestination(f"only http and https URLs are allowed, got {url.scheme!r}")


def _send_once(
    http: httpx.Client,
    method: str,
    url: str,
    follow_redirects: bool,
    max_bytes: int,
    kwargs: dict[str, typing.Any],
) -> httpx.Response:
    outgoing = http.build_request(method, url, **kwargs)
    _check_scheme(outgoing.url)
    response = http.send(outgoing, stream=True, follow_redirects=follow_redirects)
    try:
        raw = bytearray()
        for chunk in response.iter_raw():
            raw.extend(chunk)
            if len(raw) > max_bytes:
                raise ResponseTooLarge(f"{url} answered more than {max_bytes} bytes")
    finally:
        response.close()
    # A plain response with the raw body; .content decodes it per Content-Encoding.
    complete = httpx.Response(
        response.status_code,
        headers=response.headers,
        content=bytes(raw),
        request=response.request,
        history=response.history,
    )
    complete.read()
    return complete


def _delay(attempt: int, backoff: float, cap: float, response: httpx.Response | None) -> float:
    """Exponential backoff with full jitter; a Retry-After in seconds wins, within ``cap``."""
    if response is not None:
        retry_after = response.headers.get("Retry-After", "")
        if retry_after.isdigit():
            return min(float(retry_after), cap)
    return random.uniform(0, min(cap, backoff * 2**attempt))


def _sleep(seconds: float) -> None:
    time.sleep(seconds)
