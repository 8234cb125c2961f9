"""Replies to widget visitors.

The visitor's sockets already have the reply: they were told to read it the moment it was
queued (see ``push``), which is what makes chat feel instant. Delivery here only decides whether
the visitor needs it by email too: a visitor who is gone (no socket pinged for a minute) and who
left an address in the pre-chat form gets the reply from the inbox's offline email inbox.
Everything else is "sent"; the widget reports delivered and read as the visitor sees it.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formataddr, make_msgid

from django.utils import translation
from django.utils.translation import gettext as _

from kefu.connectors.base import ConnectorError, SendResult, register_sender
from kefu.connectors.chat import visitors
from kefu.connectors.chat.config import settings_of
from kefu.conversations.models import Direction, Inbox, InboxKind, Message


@register_sender("chat")
def send(message: Message) -> SendResult:
    visitor = _visitor(message)
    if visitor is None or visitors.is_online(visitor):
        return SendResult(provider_id=f"chat:{message.pk}")
    address, language = _left_address(message)
    email_inbox = _offline_inbox(message)
    if not address or email_inbox is None:
        return SendResult(provider_id=f"chat:{message.pk}")
    mail = _offline_mail(message, email_inbox, address, language)
    _deliver(mail, email_inbox)
    return SendResult(provider_id=f"chat:{message.pk}")


def _visitor(message: Message) -> str | None:
    key = message.conversation.thread_key
    return key.removeprefix("visitor:") if key.startswith("visitor:") else None


def _left_address(message: Message) -> tuple[str, str]:
    """The newest pre-chat email (and language) the visitor gave in this conversation."""
    for metadata in (
        Message.objects.filter(conversation_id=message.conversation_id, direction=Direction.INBOUND)
        .order_by("-pk")
        .values_list("metadata", flat=True)[:50]
    ):
        chat = (metadata or {}).get("chat") or {}
        if chat.get("email"):
            return str(chat["email"]), str(chat.get("language") or "en")
    return "", "en"


def _offline_inbox(message: Message) -> Inbox | None:
    inbox_id = settings_of(message.inbox).offline_email_inbox_id
    if inbox_id is None:
        return None
    return Inbox.objects.filter(pk=inbox_id, kind=InboxKind.EMAIL, is_active=True).first()


def _offline_mail(
    message: Message, email_inbox: Inbox, address: str, language: str
) -> EmailMessage:
    from kefu.connectors.chat.texts import widget_language
    from kefu.connectors.email.config import settings_of as email_settings
    from kefu.connectors.email.inbound import KEFU_HEADER

    settings = email_settings(email_inbox)
    if not (settings.smtp_host and settings.address):
        raise ConnectorError("the offline email inbox has no SMTP server", permanent=True)
    with translation.override(widget_language(language)):
        subject = _("Your chat with %(shop)s") % {"shop": message.inbox.name}
        footer = _("Reply to this email, or come back to the chat on our site.")
    mail = EmailMessage()
    mail["From"] = formataddr((message.inbox.name, settings.address))
    mail["To"] = address
    mail["Subject"] = " ".join(subject.split())
    mail["Message-ID"] = make_msgid(idstring=f"kefu.chat.{message.pk}", domain=settings.domain)
    mail[KEFU_HEADER] = str(message.pk)
    mail["Auto-Submitted"] = "no"
    mail.set_content(f"{message.text}\n\n-- \n{footer}\n")
    return mail


def _deliver(mail: EmailMessage, email_inbox: Inbox) -> None:
    from kefu.connectors.email import outbound as email_outbound
    from kefu.connectors.email.config import settings_of as email_settings

    email_outbound._deliver(mail, email_settings(email_inbox))
