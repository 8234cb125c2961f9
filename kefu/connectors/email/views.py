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
from kefu.connectors.email.ingest import store_mail
from kefu.conversations.models import Inbox, InboxKind
from kefu.core.errors import InvalidInput

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
        outcome = store_mail(inbox, request.body)
    except (inbound.InvalidMail, InvalidInput) as exc:
        return JsonResponse({"detail": f"unreadable mail: {exc}"}, status=400)
    if outcome.skipped:
        return JsonResponse({"ok": True, "skipped": outcome.skipped})
    return JsonResponse(
        {"ok": True, "created": outcome.created, "conversation_id": outcome.conversation_id},
        status=202 if outcome.created else 200,
    )
