"""One raw mail into the pipeline, the same way for the IMAP poller and the inbound endpoint.

``store_mail`` parses with the inbox's settings, decides the inbox the mail belongs on
(marketplace relay mail goes to the configured marketplace inbox), threads a reply carrying
kefu's signed token, flags a sender flooding the inbox, and calls ``receive_message``, which
stores a mail once whatever the retries (Message-ID, else a hash of the raw mail, is the key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from kefu.connectors.email import inbound, tokens
from kefu.connectors.email.config import EmailSettings, settings_of
from kefu.conversations.actions import receive_message
from kefu.conversations.inbound import InboundMessage
from kefu.conversations.models import Conversation, Direction, Inbox, InboxKind, Message
from kefu.core.errors import InvalidInput
from kefu.customers.identities import normalize_email
from kefu.customers.models import Identity

FLOOD_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class MailOutcome:
    """What became of one mail: ``skipped`` says why nothing was stored ("auto-reply", ...)."""

    inbox: Inbox
    skipped: str = ""
    created: bool = False
    conversation_id: int | None = None
    message_id: int | None = None


def store_mail(inbox: Inbox, raw: bytes) -> MailOutcome:
    """Parse and store one mail. Raises inbound.InvalidMail (no sender) and InvalidInput (the
    pipeline refused it); both leave nothing stored."""
    return store_parsed(inbox, parse_mail(inbox, raw))


def parse_mail(inbox: Inbox, raw: bytes) -> inbound.ParsedMail:
    """Parse with the inbox's settings (no database writes: callers parse outside their
    transaction). Raises inbound.InvalidMail."""
    return inbound.parse(raw, max_attachment_bytes=settings_of(inbox).max_attachment_bytes)


def store_parsed(inbox: Inbox, parsed: inbound.ParsedMail) -> MailOutcome:
    """Store a parsed mail (see ``store_mail``). Raises InvalidInput."""
    settings = settings_of(inbox)
    if parsed.message is None:
        return MailOutcome(inbox=inbox, skipped=parsed.skipped)
    target = _target_inbox(inbox, settings, parsed.relay)
    _thread_by_token(target, parsed.message)
    _flag_flood(target, settings, parsed.message)
    result = receive_message(inbox=target, message=parsed.message)
    return MailOutcome(
        inbox=target,
        created=result.created,
        conversation_id=result.conversation.pk,
        message_id=result.message.pk,
    )


def _target_inbox(inbox: Inbox, settings: EmailSettings, relay: str) -> Inbox:
    """Relay mail (Amazon, eBay) goes on the configured marketplace inbox, when there is one."""
    if not relay or settings.marketplace_inbox_id is None:
        return inbox
    marketplace = Inbox.objects.filter(
        pk=settings.marketplace_inbox_id, kind=InboxKind.MARKETPLACE, is_active=True
    ).first()
    return marketplace or inbox


def _thread_by_token(inbox: Inbox, message: InboundMessage) -> None:
    """A reply to our mail names its conversation in a signed Message-ID token: thread it there
    even when the referenced message is not stored (an edited or forwarded reply chain).

    The pipeline threads by stored provider ids, so the conversation's newest stored id is
    added to the references. A forged or foreign token matches nothing and changes nothing.
    """
    conversation_id = tokens.conversation_in(message.references)
    if conversation_id is None:
        return
    if not Conversation.objects.filter(pk=conversation_id, inbox=inbox).exists():
        return
    anchor = (
        Message.objects.filter(conversation_id=conversation_id, inbox=inbox)
        .exclude(external_id=None)
        .order_by("-sent_at", "-id")
        .values_list("external_id", flat=True)
        .first()
    )
    if anchor and anchor not in message.references:
        message.references.append(anchor)


def _flag_flood(inbox: Inbox, settings: EmailSettings, message: InboundMessage) -> None:
    """More than ``flood_per_hour`` mails from one sender within an hour (by the mails' own
    dates, so a backlog is judged as it was sent): the mail is stored, never dropped, but
    flagged so that automation leaves it alone and an agent sees why."""
    sender = message.metadata.get("email", {}).get("from", "")
    try:
        address = normalize_email(sender)
    except InvalidInput:
        return
    at = message.sent_at or timezone.now()
    earlier = Message.objects.filter(
        conversation__customer__in=Identity.objects.filter(kind="email", value=address).values(
            "customer_id"
        ),
        inbox=inbox,
        direction=Direction.INBOUND,
        sent_at__gt=at - FLOOD_WINDOW,
        sent_at__lte=at,
    ).count()
    if earlier >= settings.flood_per_hour:
        message.metadata["suspected_flood"] = {
            "sender": address,
            "mails_in_last_hour": earlier + 1,
            "limit": settings.flood_per_hour,
        }
        message.metadata["skip_automation"] = True
