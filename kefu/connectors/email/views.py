"""Raw mail posted by a mail service or an MTA pipe: ``POST /connectors/email/<inbox>/inbound``
with ``Authorization: Bearer <ingest token>`` and the RFC 822 message as the body.

A wrong token is a 403; mail that cannot be read is a 400 with the reason; auto-replies,
bounces and kefu's own mail are acknowledged (200) and not stored; a mail is stored once
whatever the retries (its Message-ID, else a hash of it, is the idempotency key).
"""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from kefu.connectors.email import inbound
from kefu.connectors.email.config import settings_of
from kefu.conversations.actions import receive_message
from kefu.conversations.models import Inbox, InboxKind

MAX_MAIL = 50 * 1024 * 1024


@csrf_exempt
@require_POST
def inbound_mail(request: HttpRequest, inbox_id: int) -> HttpResponse:
    inbox = Inbox.objects.filter(
        pk=inbox_id, kind__in=[InboxKind.EMAIL, InboxKind.MARKETPLACE], is_active=True
    ).first()
    if inbox is None:
        return JsonResponse({"detail": "unknown inbox"}, status=404)
    expected = settings_of(inbox).ingest_token
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        return JsonResponse({"detail": "bad or missing ingest token"}, status=403)
    if len(request.body) > MAX_MAIL:
        return JsonResponse({"detail": f"mail larger than {MAX_MAIL} bytes"}, status=413)
    try:
        parsed = inbound.parse(request.body)
    except inbound.InvalidMail as exc:
        return JsonResponse({"detail": f"unreadable mail: {exc}"}, status=400)
    if parsed.message is None:
        return JsonResponse({"ok": True, "skipped": parsed.skipped})
    result = receive_message(inbox=inbox, message=parsed.message)
    return JsonResponse(
        {"ok": True, "created": result.created, "conversation_id": result.conversation.pk},
        status=202 if result.created else 200,
    )
