"""The webhook Telegram calls with updates for one inbox's bot.

Verifies the secret token header (constant time), parses the update, downloads its files
through the safe HTTP client, and stores the message through the one inbound pipeline. A
replayed update_id is stored once (the pipeline is idempotent on it) and answered 200, so
Telegram stops resending. A bad secret is a 403 and stores nothing; a malformed body is a 400.
"""

from __future__ import annotations

import json
import logging

import httpx
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from kefu.connectors.telegram import inbound
from kefu.connectors.telegram.config import TelegramSettings, settings_of
from kefu.conversations.actions import edit_inbound_message, receive_message
from kefu.conversations.inbound import InboundAttachment
from kefu.conversations.models import Direction, Inbox, InboxKind, Message
from kefu.core import http

logger = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
MAX_FILE = 20 * 1024 * 1024  # what the Bot API lets a bot download


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, inbox_id: int) -> HttpResponse:
    inbox = Inbox.objects.filter(pk=inbox_id, kind=InboxKind.TELEGRAM, is_active=True).first()
    if inbox is None:
        return JsonResponse({"detail": "unknown inbox"}, status=404)
    settings = settings_of(inbox)
    secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
    if not inbound.signature_ok(secret, settings.webhook_secret):
        return JsonResponse({"detail": "bad or missing secret token"}, status=403)
    if len(request.body) > MAX_BODY:
        return JsonResponse({"detail": "update too large"}, status=413)
    try:
        parsed = inbound.parse(json.loads(request.body))
    except (ValueError, inbound.InvalidUpdate) as exc:
        return JsonResponse({"detail": f"not a Telegram update: {exc}"}, status=400)
    if parsed is None:
        return JsonResponse({"ok": True, "ignored": True})
    original = _edited_original(inbox, parsed.message.metadata["telegram"])
    if original is not None and not parsed.files:
        edit_inbound_message(message=original, text=parsed.message.text, at=parsed.message.sent_at)
        return JsonResponse({"ok": True, "edited": original.pk})
    parsed.message.attachments = [_download(settings, f) for f in parsed.files]
    result = receive_message(inbox=inbox, message=parsed.message)
    return JsonResponse({"ok": True, "created": result.created})


def _edited_original(inbox: Inbox, telegram: dict) -> Message | None:
    """For an edit, the stored message it changes (found through the chat's customer, so the
    lookup stays on indexed rows); None for a new message or an edit of one never received,
    which is then stored as a message of its own."""
    if not telegram.get("edited"):
        return None
    return (
        Message.objects.filter(
            inbox=inbox,
            direction=Direction.INBOUND,
            conversation__customer__identities__kind="telegram",
            conversation__customer__identities__value=str(telegram["chat_id"]),
            metadata__telegram__message_id=telegram.get("message_id"),
        )
        .order_by("-pk")
        .first()
    )


def _download(settings: TelegramSettings, ref: inbound.FileRef) -> InboundAttachment:
    """The file's bytes, or a record of why they could not be fetched (never dropped)."""
    refused = InboundAttachment(filename=ref.filename, content_type=ref.content_type, size=ref.size)
    if ref.size > MAX_FILE:
        refused.refused_reason = f"larger than the Bot API's {MAX_FILE} byte download limit"
        return refused
    try:
        found = http.request(
            "GET", settings.method_url("getFile"), params={"file_id": ref.file_id}, retries=1
        )
        path = found.json().get("result", {}).get("file_path") if found.status_code == 200 else None
        if not path:
            refused.refused_reason = f"Telegram getFile failed (HTTP {found.status_code})"
            return refused
        content = http.request("GET", settings.file_url(path), retries=1, max_bytes=MAX_FILE)
    except (httpx.HTTPError, ValueError) as exc:
        refused.refused_reason = f"download failed: {type(exc).__name__}"
        return refused
    if content.status_code != 200:
        refused.refused_reason = f"download failed (HTTP {content.status_code})"
        return refused
    return InboundAttachment(
        filename=ref.filename, content_type=ref.content_type, content=content.content
    )
