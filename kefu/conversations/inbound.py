"""The plain shape every connector parses a provider's delivery into."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class InboundAttachment:
    filename: str
    content_type: str = "application/octet-stream"
    content: bytes | None = None
    size: int = 0
    refused_reason: str = ""


@dataclass(slots=True)
class InboundMessage:
    """One message from a customer, as a connector hands it to ``receive_message``.

    ``identities`` are raw (kind, value) pairs (``("phone", "(415) 555-0100")``); the pipeline
    normalizes them. ``references`` are provider ids of earlier messages this one answers
    (email In-Reply-To/References); ``thread_key`` is a channel's own thread (a chat session).
    """

    external_id: str | None
    identities: list[tuple[str, str]]
    text: str = ""
    html: str = ""
    subject: str = ""
    customer_name: str = ""
    sent_at: datetime | None = None
    references: list[str] = field(default_factory=list)
    thread_key: str = ""
    attachments: list[InboundAttachment] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
