"""Attachments: stored through Django's storage, refused ones recorded with the reason."""

from __future__ import annotations

import re
from collections.abc import Sequence

from django.core.files.base import ContentFile

from kefu.config.env import env_int
from kefu.conversations.inbound import InboundAttachment
from kefu.conversations.models import Attachment, Message

DEFAULT_MAX_BYTES = 25 * 1024 * 1024
_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)


def max_attachment_bytes(message: Message) -> int:
    """The inbox's limit (config ``max_attachment_bytes``) or KEFU_MAX_ATTACHMENT_BYTES."""
    configured = message.inbox.config.get("max_attachment_bytes")
    if isinstance(configured, int) and configured > 0:
        return configured
    return env_int("KEFU_MAX_ATTACHMENT_BYTES", DEFAULT_MAX_BYTES, minimum=1)


def safe_filename(name: str) -> str:
    """A file name with no path and no characters a file system or a header could misread."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).strip(" .")
    return cleaned[:200] or "attachment"


def store_inbound_attachments(message: Message, items: Sequence[InboundAttachment]) -> None:
    limit = max_attachment_bytes(message)
    for item in items:
        # A negative size from a connector would break the column's check (a 500 on PostgreSQL).
        size = len(item.content) if item.content is not None else max(0, item.size)
        record = Attachment(
            message=message,
            filename=safe_filename(item.filename),
            content_type=item.content_type.replace("\x00", "")[:127],
            size=size,
            refused_reason=item.refused_reason.replace("\x00", "")[:200],
        )
        if not record.refused_reason and size > limit:
            record.refused_reason = f"larger than the inbox limit of {limit} bytes"
        if not record.refused_reason and item.content is not None:
            record.file.save(record.filename, ContentFile(item.content), save=False)
        record.save()
