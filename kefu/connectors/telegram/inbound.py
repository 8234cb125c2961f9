"""Telegram Bot API updates, verified and parsed into ``InboundMessage`` (no database access).

Handles ``message`` and ``edited_message`` updates from private chats: text and captions,
photos (the largest size), documents, voice notes, audio, video, stickers and locations. The
update_id is the idempotency key (Telegram resends an update until it gets a 200), so a
replay is stored once. Other update kinds (channel posts, callback queries, ...) are
acknowledged and ignored.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kefu.conversations.inbound import InboundMessage


class InvalidUpdate(ValueError):
    """The body is not a Telegram update kefu can read."""


@dataclass(frozen=True)
class FileRef:
    """A file Telegram keeps for us; fetched with getFile."""

    file_id: str
    filename: str
    content_type: str
    size: int


@dataclass
class ParsedUpdate:
    message: InboundMessage
    files: list[FileRef] = field(default_factory=list)


def signature_ok(received: str | None, expected: str) -> bool:
    """Constant-time check of ``X-Telegram-Bot-Api-Secret-Token``; no secret set means no
    update is accepted."""
    if not expected or not received:
        return False
    return hmac.compare_digest(received.encode(), expected.encode())


def parse(update: Any) -> ParsedUpdate | None:
    """The message an update carries, or None for updates kefu does not handle.

    Raises InvalidUpdate for a body that is not an update (no integer update_id, a message
    without chat or date).
    """
    if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
        raise InvalidUpdate("not a Telegram update: update_id missing")
    edited = "edited_message" in update
    message = update.get("edited_message") if edited else update.get("message")
    if message is None:
        return None
    if not isinstance(message, dict):
        raise InvalidUpdate("message is not an object")
    chat = message.get("chat")
    if not isinstance(chat, dict) or not isinstance(chat.get("id"), int):
        raise InvalidUpdate("message without a chat id")
    if chat.get("type") != "private":
        return None  # groups and channels are not customer conversations
    sender: dict = message["from"] if isinstance(message.get("from"), dict) else {}
    text, files, extra = _content(message)
    return ParsedUpdate(
        message=InboundMessage(
            external_id=f"update:{update['update_id']}",
            identities=[("telegram", str(chat["id"]))],
            text=text,
            customer_name=_name(sender) or _name(chat),
            sent_at=_time(message.get("edit_date") if edited else message.get("date")),
            references=_references(message, chat["id"]),
            metadata={
                "telegram": {
                    "message_id": message.get("message_id"),
                    "chat_id": chat["id"],
                    "username": sender.get("username", ""),
                    "language_code": sender.get("language_code", ""),
                    "edited": edited,
                    **extra,
                }
            },
        ),
        files=files,
    )


def _content(message: dict) -> tuple[str, list[FileRef], dict]:
    text = str(message.get("text") or message.get("caption") or "")
    files: list[FileRef] = []
    extra: dict = {}
    photos = message.get("photo")
    if isinstance(photos, list) and photos:
        largest = max(photos, key=lambda p: p.get("file_size", 0) if isinstance(p, dict) else 0)
        files.append(_file(largest, "photo.jpg", "image/jpeg"))
    for key, default_name, default_type in (
        ("document", "document", "application/octet-stream"),
        ("voice", "voice.ogg", "audio/ogg"),
        ("audio", "audio.mp3", "audio/mpeg"),
        ("video", "video.mp4", "video/mp4"),
    ):
        if isinstance(message.get(key), dict):
            files.append(_file(message[key], default_name, default_type))
    if isinstance(message.get("sticker"), dict):
        text = text or str(message["sticker"].get("emoji") or "[sticker]")
    location = message.get("location")
    if isinstance(location, dict):
        extra["location"] = {k: location.get(k) for k in ("latitude", "longitude")}
        text = text or f"[location {location.get('latitude')}, {location.get('longitude')}]"
    if not text and files:
        text = f"[{files[0].filename}]"
    return text, files, extra


def _file(raw: Any, default_name: str, default_type: str) -> FileRef:
    if not isinstance(raw, dict) or not isinstance(raw.get("file_id"), str):
        raise InvalidUpdate("a file without file_id")
    return FileRef(
        file_id=raw["file_id"],
        filename=str(raw.get("file_name") or default_name),
        content_type=str(raw.get("mime_type") or default_type),
        size=int(raw.get("file_size") or 0),
    )


def _name(who: dict) -> str:
    parts = [str(who.get("first_name") or ""), str(who.get("last_name") or "")]
    return " ".join(p for p in parts if p).strip()


def _time(stamp: Any) -> datetime | None:
    if not isinstance(stamp, int):
        raise InvalidUpdate("message without a date")
    return datetime.fromtimestamp(stamp, tz=UTC)


def _references(message: dict, chat_id: int) -> list[str]:
    """A reply to one of our messages threads into its conversation (ids we record on send)."""
    replied = message.get("reply_to_message")
    if isinstance(replied, dict) and isinstance(replied.get("message_id"), int):
        return [f"sent:{chat_id}:{replied['message_id']}"]
    return []
