"""What every connector shares: the outbound sender registry and its error type.

A sender delivers one queued outbound message through its provider::

    from kefu.connectors.base import ConnectorError, SendResult, register_sender

    @register_sender("telegram")
    def send(message: Message) -> SendResult:
        ...  # call the provider through kefu.core.http
        return SendResult(provider_id="12345")

``kefu.connectors.<kind>.outbound`` is imported the first time a message of that kind is sent, so
a connector registers itself by living in the right place. API and portal inboxes need no
provider: the reply is marked sent and an integrator (or the portal page) reads it from kefu.

Senders never write to the database: the delivery task (``kefu.conversations.tasks``) records the
outcome through actions. A sender raises ``ConnectorError(permanent=True)`` when retrying cannot
help (invalid recipient, message refused) and ``permanent=False`` when it may (timeouts, 5xx,
rate limits); any other exception is treated as transient.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:
    from kefu.conversations.models import Message

logger = logging.getLogger(__name__)

__all__ = [
    "ConnectorError",
    "SendResult",
    "Sender",
    "get_sender",
    "register_sender",
    "unregister_sender",
]


class ConnectorError(Exception):
    """A provider refused or failed a request. ``message`` is shown to agents in the timeline."""

    def __init__(self, message: str, *, permanent: bool, provider_code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.provider_code = provider_code


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the provider answered: its id for the message (the key for later status updates)."""

    provider_id: str | None = None
    # "sent" (accepted by the provider) or "delivered" when the provider confirms at once.
    status: str = "sent"


Sender = Callable[["Message"], SendResult]

_senders: dict[str, Sender] = {}


@overload
def register_sender(
    kind: str, sender: None = None, *, replace: bool = False
) -> Callable[[Sender], Sender]: ...
@overload
def register_sender(kind: str, sender: Sender, *, replace: bool = False) -> Sender: ...
def register_sender(
    kind: str, sender: Sender | None = None, *, replace: bool = False
) -> Sender | Callable[[Sender], Sender]:
    """Register ``sender`` for inboxes of ``kind``; usable as ``@register_sender(kind)``.

    Raises ValueError when ``kind`` already has a different sender and ``replace`` is false.
    """

    def register(function: Sender) -> Sender:
        current = _senders.get(kind)
        if current is not None and current is not function and not replace:
            raise ValueError(f"a sender for {kind!r} is already registered: {current!r}")
        _senders[kind] = function
        return function

    return register(sender) if sender is not None else register


def unregister_sender(kind: str) -> None:
    _senders.pop(kind, None)


def get_sender(kind: str) -> Sender:
    """The sender for ``kind``, importing ``kefu.connectors.<kind>.outbound`` on first use.

    Raises ConnectorError(permanent=True) when no connector can send for ``kind``.
    """
    if kind not in _senders:
        _import_connector(kind)
    try:
        return _senders[kind]
    except KeyError:
        raise ConnectorError(
            f"no connector can send messages for {kind} inboxes yet", permanent=True
        ) from None


def _import_connector(kind: str) -> None:
    if not kind.isidentifier():
        return
    module_name = f"kefu.connectors.{kind}.outbound"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            return  # no such connector; a missing dependency inside one must still surface
        raise
    send = getattr(module, "send", None)
    if kind not in _senders and callable(send):
        _senders[kind] = send


def send_without_provider(message: Message) -> SendResult:
    """API and portal inboxes: kefu is the provider; the reply is readable at once."""
    return SendResult(provider_id=None, status="sent")


for _kind in ("api", "portal"):
    register_sender(_kind, send_without_provider)


def post_json(
    provider: str, url: str, payload: dict, *, headers: dict[str, str] | None = None
) -> tuple[int, dict]:
    """POST ``payload`` to a provider's JSON API through the guarded client; returns (status,
    body). An unreachable provider is a transient ConnectorError; reading the answer is the
    caller's (see ``refused``)."""
    import httpx

    from kefu.core import http

    try:
        response = http.request("POST", url, json=payload, headers=headers or {}, retries=1)
    except (httpx.TimeoutException, httpx.ConnectError) as exc:
        raise ConnectorError(
            f"{provider} unreachable: {type(exc).__name__}", permanent=False
        ) from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    return response.status_code, body if isinstance(body, dict) else {}


def refused(provider: str, status: int, reason: str, code: object = None) -> ConnectorError:
    """The error for a provider's refusal: 429 and 5xx may pass on retry, other answers not."""
    transient = status == 429 or status >= 500
    return ConnectorError(
        f"{provider} refused the message: {reason or f'HTTP {status}'}",
        permanent=not transient,
        provider_code=str(code or status),
    )
