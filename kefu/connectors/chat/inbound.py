"""A visitor's message (a websocket frame, or an upload) into the one inbound pipeline.

The widget gives every message a ``client_id`` (a random id made in the browser): the external
id is ``chat:<visitor>:<client_id>``, so a message re-sent after a dropped socket is stored once.
The thread key is the visitor's, so a visitor's messages thread together and nobody else's can.
The pre-chat name becomes the customer's name; the pre-chat email is kept on the message (for
the offline answer by email and for the agent to link by hand), never used to link customers:
anybody can type anybody's address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kefu.connectors.chat import visitors
from kefu.connectors.chat.config import ChatSettings
from kefu.conversations.inbound import InboundAttachment, InboundMessage
from kefu.conversations.models import Conversation, Inbox, Status
from kefu.conversations.pipeline import ReceiveResult, receive_message
from kefu.core.errors import InvalidInput

MAX_TEXT = 5_000
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_EMAIL = re.compile(r"^[^@\s<>\"']{1,64}@[^@\s<>\"']{1,190}\.[^@\s<>\"']{2,}$")


class RateLimited(Exception):
    """The visitor's address or the visitor started or wrote too much; nothing was stored."""


@dataclass(frozen=True)
class VisitorMessage:
    visitor: str
    client_id: str
    text: str
    name: str = ""
    email: str = ""
    language: str = ""
    page: str = ""


def parse_frame(visitor: str, frame: dict) -> VisitorMessage:
    """Validate a ``{"type": "message", ...}`` frame. Raises InvalidInput with the reason."""
    client_id = frame.get("client_id")
    if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
        raise InvalidInput("client_id must be 8 to 64 letters, digits, - or _", field="client_id")
    text = frame.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("a message needs text", field="text")
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"a message holds at most {MAX_TEXT} characters", field="text")
    return VisitorMessage(
        visitor=visitor,
        client_id=client_id,
        text=text,
        name=_short(frame.get("name"), 100),
        email=clean_email(frame.get("email")),
        language=_short(frame.get("language"), 16),
        page=_short(frame.get("page"), 500),
    )


def clean_email(raw: object) -> str:
    """A plausible address or "" (the pre-chat email is optional; a bad one is dropped)."""
    if not isinstance(raw, str):
        return ""
    value = raw.strip()
    return value if len(value) <= 254 and _EMAIL.match(value) else ""


def _short(raw: object, limit: int) -> str:
    return " ".join(raw.split())[:limit] if isinstance(raw, str) else ""


def store(
    *,
    inbox: Inbox,
    settings: ChatSettings,
    message: VisitorMessage,
    address: str,
    attachments: list[InboundAttachment] | None = None,
) -> ReceiveResult:
    """Store one visitor message exactly once. Raises RateLimited or InvalidInput."""
    if not visitors.allow(visitors.message_limit(), f"{inbox.pk}:{message.visitor}"):
        raise RateLimited("too many messages; wait a minute")
    starts = not _has_live_conversation(inbox.pk, message.visitor)
    if starts and not visitors.allow(
        visitors.new_conversation_limit(settings.new_conversations_per_hour),
        f"{inbox.pk}:{address}",
    ):
        raise RateLimited("too many new conversations from this address; try again later")
    chat = {"visitor": message.visitor, "client_id": message.client_id}
    chat.update(
        {key: value for key in ("email", "language", "page") if (value := getattr(message, key))}
    )
    inbound = InboundMessage(
        external_id=f"chat:{message.visitor}:{message.client_id}",
        identities=[("chat_visitor", message.visitor)],
        text=message.text,
        customer_name=message.name,
        thread_key=visitors.thread_key(message.visitor),
        attachments=attachments or [],
        metadata={"chat": chat},
    )
    return receive_message(inbox=inbox, message=inbound)


def _has_live_conversation(inbox_id: int, visitor: str) -> bool:
    return (
        Conversation.objects.filter(inbox_id=inbox_id, thread_key=visitors.thread_key(visitor))
        .exclude(status=Status.CLOSED)
        .exists()
    )


def attachment_from_upload(upload, limit: int) -> InboundAttachment:  # type: ignore[no-untyped-def]
    """An uploaded file as an attachment; one over ``limit`` is kept as refused, with why."""
    name = str(upload.name or "attachment")[:255]
    content_type = str(upload.content_type or "application/octet-stream")[:127]
    if upload.size > limit:
        return InboundAttachment(
            filename=name,
            content_type=content_type,
            size=upload.size,
            refused_reason=f"larger than the widget's limit of {limit // (1024 * 1024)} MB",
        )
    content = upload.read()
    return InboundAttachment(
        filename=name, content_type=content_type, content=content, size=len(content)
    )
