"""The widget's HTTP side: the script itself, uploads, attachment downloads, a demo page.

The script is served by kefu (no CDN) at ``/chat/widget.js``; a storefront adds::

    <script src="https://support.example.com/chat/widget.js" data-key="wk_..." async></script>

Uploads come from the storefront's origin, so they answer CORS for the inbox's allowed origins;
they carry the visitor's token (``Authorization: Bearer``), never a cookie.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotModified,
    JsonResponse,
)
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from kefu.accounts.ratelimit import client_address
from kefu.connectors.chat import history, inbound, visitors
from kefu.connectors.chat.config import ChatSettings, inbox_for_key, settings_of
from kefu.conversations.models import Inbox
from kefu.core.errors import InvalidInput

WIDGET_FILE = Path(__file__).parent / "static" / "widget.js"
MAX_UPLOAD_BODY = 60 * 1024 * 1024


@cache
def _widget() -> tuple[bytes, str]:
    body = WIDGET_FILE.read_bytes()
    return body, f'"{hashlib.sha256(body).hexdigest()[:20]}"'


@require_GET
def widget_js(request: HttpRequest) -> HttpResponse:
    body, etag = _widget()
    if request.headers.get("If-None-Match") == etag:
        return HttpResponseNotModified()
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["ETag"] = etag
    # Short: a fixed widget reaches every shop within minutes; the ETag makes re-checks cheap.
    response["Cache-Control"] = "public, max-age=300"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def _inbox_or_404(widget_key: str) -> tuple[Inbox, ChatSettings]:
    inbox = inbox_for_key(widget_key)
    if inbox is None:
        raise Http404("unknown widget")
    return inbox, settings_of(inbox)


def _cors(response: HttpResponse, request: HttpRequest, settings: ChatSettings) -> HttpResponse:
    origin = request.headers.get("Origin", "")
    if origin and settings.allows_origin(origin):
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Headers"] = "Authorization"
        response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response["Access-Control-Max-Age"] = "600"
        response["Vary"] = "Origin"
    return response


def _visitor(request: HttpRequest, inbox: Inbox) -> str | None:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return visitors.visitor_of(inbox.pk, token or request.GET.get("t", ""))


@csrf_exempt
def upload(request: HttpRequest, widget_key: str) -> HttpResponse:
    """A file from the visitor (with optional text): stored as one message, like a frame."""
    inbox, settings = _inbox_or_404(widget_key)
    if request.method == "OPTIONS":
        return _cors(HttpResponse(status=204), request, settings)
    if request.method != "POST":
        return _cors(JsonResponse({"detail": "POST a file"}, status=405), request, settings)
    origin = request.headers.get("Origin", "")
    if origin and not settings.allows_origin(origin):
        return JsonResponse({"detail": "origin not allowed for this widget"}, status=403)
    visitor = _visitor(request, inbox)
    if visitor is None:
        return _cors(JsonResponse({"detail": "bad visitor token"}, status=403), request, settings)
    return _cors(_store_upload(request, inbox, settings, visitor), request, settings)


def _store_upload(
    request: HttpRequest, inbox: Inbox, settings: ChatSettings, visitor: str
) -> JsonResponse:
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_UPLOAD_BODY:
        return JsonResponse({"detail": "upload too large"}, status=413)
    upload = request.FILES.get("file")
    if upload is None:
        return JsonResponse({"detail": "no file in the form field 'file'"}, status=400)
    frame = {key: request.POST.get(key, "") for key in ("client_id", "name", "email", "language")}
    frame["text"] = request.POST.get("text") or upload.name or "attachment"
    try:
        message = inbound.parse_frame(visitor, {"type": "message", **frame})
        attachment = inbound.attachment_from_upload(upload, settings.max_attachment_bytes)
        result = inbound.store(
            inbox=inbox,
            settings=settings,
            message=message,
            address=client_address(request),
            attachments=[attachment],
        )
    except InvalidInput as exc:
        return JsonResponse({"detail": str(exc)}, status=400)
    except inbound.RateLimited as exc:
        return JsonResponse({"detail": str(exc)}, status=429)
    _hint(result.conversation.pk)
    return JsonResponse(
        {"id": result.message.pk, "refused": attachment.refused_reason},
        status=201 if result.created else 200,
    )


def _hint(conversation_id: int) -> None:
    from kefu.connectors.chat.consumers import chat_group
    from kefu.workspace.realtime import send_to_group

    send_to_group(
        chat_group(conversation_id), {"type": "chat.sync", "id": conversation_id}, urgent=True
    )


@require_GET
def attachment(
    request: HttpRequest, widget_key: str, attachment_id: int
) -> HttpResponse | FileResponse:
    """A file of the visitor's own conversations, for the holder of the visitor's token."""
    inbox, _settings = _inbox_or_404(widget_key)
    visitor = _visitor(request, inbox)
    found = None if visitor is None else history.visitor_may_read(inbox.pk, visitor, attachment_id)
    if found is None:
        raise Http404("no such attachment")
    response = FileResponse(found.file.open("rb"), as_attachment=True, filename=found.filename)
    response["Content-Type"] = "application/octet-stream"
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
def demo(request: HttpRequest, widget_key: str) -> HttpResponse:
    """A plain page with the widget on it: what a shop's page looks like, for trying it out."""
    _inbox_or_404(widget_key)
    return render(request, "chat/demo.html", {"widget_key": widget_key})
