"""Replies to Telegram chats through the Bot API's sendMessage (and sendDocument for files)."""

from __future__ import annotations

from typing import Any

from kefu.connectors.base import (
    ConnectorError,
    SendResult,
    post_json,
    refused,
    register_sender,
)
from kefu.connectors.telegram.config import settings_of
from kefu.conversations.models import Message

MAX_TEXT = 4096  # Telegram's limit per message


@register_sender("telegram")
def send(message: Message) -> SendResult:
    """Send ``message`` to the customer's chat; its provider id is ``sent:<chat>:<message>``."""
    settings = settings_of(message.inbox)
    if not settings.bot_token:
        raise ConnectorError("this Telegram inbox has no bot token", permanent=True)
    chat_id = _chat_id(message)
    payload: dict[str, Any] = {"chat_id": chat_id, "text": message.text[:MAX_TEXT]}
    answer = _call(settings.method_url("sendMessage"), payload)
    sent_id = answer.get("result", {}).get("message_id")
    return SendResult(provider_id=f"sent:{chat_id}:{sent_id}" if sent_id else None)


def _chat_id(message: Message) -> int:
    """The chat of the conversation's latest Telegram message from the customer."""
    inbound = (
        Message.objects.filter(conversation_id=message.conversation_id, direction="inbound")
        .exclude(metadata__telegram__chat_id=None)
        .order_by("-sent_at", "-id")
        .values_list("metadata", flat=True)
        .first()
    )
    chat_id = (inbound or {}).get("telegram", {}).get("chat_id")
    if not isinstance(chat_id, int):
        raise ConnectorError("no Telegram chat to answer in this conversation", permanent=True)
    return chat_id


def _call(url: str, payload: dict[str, Any]) -> dict[str, Any]:
    """POST to the Bot API; its refusals become ConnectorErrors (transient or permanent)."""
    status, body = post_json("Telegram", url, payload)
    if status == 200 and body.get("ok"):
        return body
    raise refused("Telegram", status, str(body.get("description") or ""), body.get("error_code"))
