"""The webhook Meta calls for one WhatsApp inbox: the subscription handshake (GET) and
notifications (POST), verified by X-Hub-Signature-256 over the raw body.

Messages go through the one inbound pipeline (idempotent on the WhatsApp message id, so Meta's
retries store nothing twice); statuses update the outbound message they name, never backwards.
A bad signature is a 403 and changes nothing; a malformed body is a 400.
"""

from __future__ import annotations

import hmac
import json

import httpx
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from kefu.connectors.whatsapp import inbound
from kefu.connectors.whatsapp.config import WhatsAppSettings, settings_of
from kefu.conversations import actions
from kefu.conversations.inbound import InboundAttachment
from kefu.conversations.models import Inbox, InboxKind
from kefu.core import http

MAX_BODY = 3 * 1024 * 1024
MAX_MEDIA = 100 * 1024 * 1024


@csrf_exempt
def webhook(request: HttpRequest, inbox_id: int) -> HttpResponse:
    inbox = Inbox.objects.filter(pk=inbox_id, kind=InboxKind.WHATSAPP, is_active=True).first()
    if inbox is None:
        return JsonResponse({"detail": "unknown inbox"}, status=404)
    settings = settings_of(inbox)
    if request.method == "GET":
        return _handshake(request, settings)
    if request.method != "POST":
        return JsonResponse({"detail": "GET or POST"}, status=405)
    if len(request.body) > MAX_BODY:
        return JsonResponse({"detail": "notification too large"}, status=413)
    header = request.headers.get("X-Hub-Signature-256")
    if not inbound.signature_ok(request.body, header, settings.app_secret):
        return JsonResponse({"detail": "bad or missing X-Hub-Signature-256"}, status=403)
    try:
        notification = inbound.parse(json.loads(request.body))
    except (ValueError, inbound.InvalidNotification) as exc:
        return JsonResponse({"detail": f"not a WhatsApp notification: {exc}"}, status=400)
    created = 0
    for incoming in notification.messages:
        incoming.message.attachments = [_download(settings, m) for m in incoming.media]
        created += actions.receive_message(inbox=inbox, message=incoming.message).created
    for report in notification.statuses:
        actions.record_provider_status(
            inbox_id=inbox.pk,
            provider_id=report.provider_id,
            status=report.status,
            at=report.at,
            error=report.error,
        )
    return JsonResponse({"ok": True, "created": created, "statuses": len(notification.statuses)})


def _handshake(request: HttpRequest, settings: WhatsAppSettings) -> HttpResponse:
    """Meta's subscription check: echo hub.challenge when hub.verify_token is ours."""
    token = request.GET.get("hub.verify_token", "")
    if (
        request.GET.get("hub.mode") == "subscribe"
        and settings.verify_token
        and hmac.compare_digest(token.encode(), settings.verify_token.encode())
    ):
        return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")
    return JsonResponse({"detail": "verification failed"}, status=403)


def _download(settings: WhatsAppSettings, ref: inbound.MediaRef) -> InboundAttachment:
    """The media's bytes (GET /<media id> gives a URL, fetched with the token), or a record of
    why they could not be fetched."""
    refused = InboundAttachment(filename=ref.filename, content_type=ref.content_type)
    if not settings.access_token:
        refused.refused_reason = "no access token to download WhatsApp media"
        return refused
    auth = {"Authorization": f"Bearer {settings.access_token}"}
    try:
        found = http.request("GET", settings.url(ref.media_id), headers=auth, retries=1)
        url = found.json().get("url") if found.status_code == 200 else None
        if not url:
            refused.refused_reason = f"WhatsApp media lookup failed (HTTP {found.status_code})"
            return refused
        media = http.request("GET", url, headers=auth, retries=1, max_bytes=MAX_MEDIA)
    except (httpx.HTTPError, ValueError) as exc:
        refused.refused_reason = f"download failed: {type(exc).__name__}"
        return refused
    if media.status_code != 200:
        refused.refused_reason = f"download failed (HTTP {media.status_code})"
        return refused
    return InboundAttachment(
        filename=ref.filename, content_type=ref.content_type, content=media.content
    )
