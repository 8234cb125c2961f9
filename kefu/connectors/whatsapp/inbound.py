"""WhatsApp Cloud API webhooks: the signature check and the parsing of a notification into
customer messages and delivery statuses (no database access here).

A notification is {"object": "whatsapp_business_account", "entry": [{"changes": [{"field":
"messages", "value": {"metadata", "contacts", "messages", "statuses"}}]}]}. Message types:
text, image, audio, video, document, sticker, location, contacts, interactive (button and
list replies), button (template quick replies), reaction; others are kept as a placeholder
naming their type, never dropped.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kefu.conversations.inbound import InboundMessage

MEDIA_TYPES = {"image": "image.jpg", "audio": "audio.ogg", "video": "video.mp4",
               "document": "document", "sticker": "sticker.webp"}  # fmt: skip


class InvalidNotification(ValueError):
    """The body is not a WhatsApp notification kefu can read."""


@dataclass(frozen=True)
class MediaRef:
    media_id: str
    filename: str
    content_type: str


@dataclass
class IncomingMessage:
    message: InboundMessage
    media: list[MediaRef] = field(default_factory=list)


@dataclass(frozen=True)
class StatusReport:
    provider_id: str
    status: str
    at: datetime
    error: str = ""


@dataclass
class Notification:
    messages: list[IncomingMessage] = field(default_factory=list)
    statuses: list[StatusReport] = field(default_factory=list)


def signature_ok(raw_body: bytes, header: str | None, app_secret: str) -> bool:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the app secret>``."""
    if not app_secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header.removeprefix("sha256="), expected)


def parse(body: Any) -> Notification:
    """Every message and status the notification carries. Raises InvalidNotification."""
    if not isinstance(body, dict) or body.get("object") != "whatsapp_business_account":
        raise InvalidNotification("not a WhatsApp Business Account notification")
    found = Notification()
    for entry in _list(body.get("entry"), "entry"):
        for change in _list(_dict(entry, "entry").get("changes"), "changes"):
            change = _dict(change, "change")
            if change.get("field") != "messages":
                continue
            value = _dict(change.get("value"), "value")
            names = _contact_names(value.get("contacts"))
            for raw in _list(value.get("messages") or [], "messages"):
                found.messages.append(_message(_dict(raw, "message"), names))
            for raw in _list(value.get("statuses") or [], "statuses"):
                found.statuses.append(_status(_dict(raw, "status")))
    return found


def _message(raw: dict, names: dict[str, str]) -> IncomingMessage:
    sender, message_id = raw.get("from"), raw.get("id")
    if not isinstance(sender, str) or not isinstance(message_id, str):
        raise InvalidNotification("a message without from or id")
    kind = str(raw.get("type") or "unknown")
    text, media, extra = _content(kind, raw)
    context: dict = raw["context"] if isinstance(raw.get("context"), dict) else {}
    return IncomingMessage(
        message=InboundMessage(
            external_id=message_id,
            identities=[("phone", f"+{sender.lstrip('+')}"), ("whatsapp", sender)],
            text=text,
            customer_name=names.get(sender, ""),
            sent_at=_time(raw.get("timestamp")),
            references=[context["id"]] if isinstance(context.get("id"), str) else [],
            metadata={"whatsapp": {"type": kind, "wa_id": sender, **extra}},
        ),
        media=media,
    )


def _content(kind: str, raw: dict) -> tuple[str, list[MediaRef], dict]:
    body: dict = raw[kind] if isinstance(raw.get(kind), dict) else {}
    if kind == "text":
        return str(body.get("body") or ""), [], {}
    if kind in MEDIA_TYPES:
        if not isinstance(body.get("id"), str):
            raise InvalidNotification(f"{kind} without a media id")
        name = str(body.get("filename") or MEDIA_TYPES[kind])
        ref = MediaRef(body["id"], name, str(body.get("mime_type") or "application/octet-stream"))
        return str(body.get("caption") or f"[{kind}]"), [ref], {}
    if kind == "location":
        where = " ".join(str(body.get(k) or "") for k in ("name", "address")).strip()
        spot = f"{body.get('latitude')}, {body.get('longitude')}"
        return f"[location {spot}] {where}".strip(), [], {"location": body}
    if kind == "contacts":
        people = [c.get("name", {}).get("formatted_name", "") for c in raw.get("contacts") or []]
        return (
            "[contacts] " + ", ".join(p for p in people if p),
            [],
            {"contacts": raw.get("contacts")},
        )
    if kind == "interactive":
        reply = body.get("button_reply") or body.get("list_reply") or {}
        return str(reply.get("title") or "[interactive]"), [], {"reply_id": reply.get("id")}
    if kind == "button":
        return str(body.get("text") or "[button]"), [], {"payload": body.get("payload")}
    if kind == "reaction":
        return (
            f"[reaction {body.get('emoji') or 'removed'}]",
            [],
            {"reacted_to": body.get("message_id")},
        )
    return f"[{kind} message]", [], {}


def _status(raw: dict) -> StatusReport:
    if not isinstance(raw.get("id"), str) or raw.get("status") not in (
        "sent", "delivered", "read", "failed"
    ):  # fmt: skip
        raise InvalidNotification("a status without id or with an unknown status")
    errors: list = raw["errors"] if isinstance(raw.get("errors"), list) else []
    error = "; ".join(
        f"{e.get('code')}: {e.get('title') or e.get('message') or ''}".strip()
        for e in errors
        if isinstance(e, dict)
    )
    at = _time(raw.get("timestamp")) or datetime.now(tz=UTC)
    return StatusReport(raw["id"], raw["status"], at, error)


def _contact_names(contacts: Any) -> dict[str, str]:
    names = {}
    for contact in contacts or []:
        if isinstance(contact, dict) and isinstance(contact.get("wa_id"), str):
            names[contact["wa_id"]] = str(contact.get("profile", {}).get("name") or "")
    return names


def _time(stamp: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(stamp), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _list(value: Any, name: str) -> list:
    if not isinstance(value, list):
        raise InvalidNotification(f"{name} is not a list")
    return value


def _dict(value: Any, name: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidNotification(f"{name} is not an object")
    return value
