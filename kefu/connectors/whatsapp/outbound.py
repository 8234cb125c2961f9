"""Replies through the Cloud API's /<phone number id>/messages, within WhatsApp's rules.

Free text may only be sent within 24 hours of the customer's last message (the customer
service window); outside it only an approved template may start the conversation again.
``can_send_free_text`` lets the composer say so before the agent writes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from kefu.connectors.base import (
    ConnectorError,
    SendResult,
    post_json,
    refused,
    register_sender,
)
from kefu.connectors.whatsapp.config import settings_of
from kefu.conversations.models import Conversation, Message

WINDOW = timedelta(hours=24)
# Graph API error codes that retrying cannot fix (see Meta's error code reference).
OUTSIDE_WINDOW = "131047"


def can_send_free_text(conversation: Conversation) -> bool:
    """True within 24 hours of the customer's last inbound message."""
    last = conversation.last_inbound_at
    return last is not None and timezone.now() - last < WINDOW


def _recipient(message: Message) -> str:
    recent = (
        Message.objects.filter(conversation_id=message.conversation_id, direction="inbound")
        .order_by("-sent_at", "-id")
        .values_list("metadata", flat=True)[:50]
    )
    wa_id = next((m["whatsapp"]["wa_id"] for m in recent if "whatsapp" in (m or {})), None)
    if not isinstance(wa_id, str):
        raise ConnectorError("no WhatsApp number to answer in this conversation", permanent=True)
    return wa_id


@register_sender("whatsapp")
def send(message: Message) -> SendResult:
    """Send a text reply, or the template named in ``metadata["whatsapp_template"]``
    ({"name", "language", "components"})."""
    settings = settings_of(message.inbox)
    if not (settings.access_token and settings.phone_number_id):
        raise ConnectorError("this WhatsApp inbox has no access token or number", permanent=True)
    payload: dict[str, Any] = {"messaging_product": "whatsapp", "to": _recipient(message)}
    template = (message.metadata or {}).get("whatsapp_template")
    if template:
        payload |= {"type": "template", "template": _template(template)}
    else:
        if not can_send_free_text(message.conversation):
            raise ConnectorError(
                "outside the 24-hour window: send an approved template", permanent=True
            )
        payload |= {"type": "text", "text": {"body": message.text[:4096]}}
    answer = _call(
        settings.url(f"{settings.phone_number_id}/messages"), settings.access_token, payload
    )
    sent = answer.get("messages") or [{}]
    return SendResult(provider_id=sent[0].get("id"))


def _template(template: dict) -> dict:
    return {
        "name": str(template["name"]),
        "language": {"code": str(template.get("language") or "en")},
        "components": list(template.get("components") or []),
    }


def _call(url: str, token: str, payload: dict[str, Any]) -> dict[str, Any]:
    """POST to the Graph API; its refusals become ConnectorErrors (transient or permanent)."""
    auth = {"Authorization": f"Bearer {token}"}
    status, body = post_json("WhatsApp", url, payload, headers=auth)
    if status == 200:
        return body
    error = body["error"] if isinstance(body.get("error"), dict) else {}
    raise refused("WhatsApp", status, str(error.get("message") or ""), error.get("code"))
