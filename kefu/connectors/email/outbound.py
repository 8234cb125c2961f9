"""Replies by SMTP: threaded (In-Reply-To, References), text and HTML, attachments, a
Message-ID of kefu's own (so the customer's answer threads back), and a header marking kefu's
mail so that it never comes back in as a conversation.

Headers are built by Python's email package, which refuses line breaks in header values, and
every value a person typed (the subject) has its whitespace collapsed first: no header
injection from any field.
"""

from __future__ import annotations

import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

from kefu.connectors.base import ConnectorError, SendResult, register_sender
from kefu.connectors.email.config import EmailSettings, settings_of
from kefu.connectors.email.inbound import KEFU_HEADER
from kefu.conversations.models import Message

TIMEOUT = 30


@register_sender("email")
@register_sender("marketplace")
def send(message: Message) -> SendResult:
    settings = settings_of(message.inbox)
    if not (settings.smtp_host and settings.address):
        raise ConnectorError("this email inbox has no SMTP server or address", permanent=True)
    mail = build(message, settings)
    _deliver(mail, settings)
    return SendResult(provider_id=str(mail["Message-ID"]))


def build(message: Message, settings: EmailSettings) -> EmailMessage:
    conversation = message.conversation
    earlier = list(
        Message.objects.filter(conversation=conversation, direction="inbound")
        .exclude(external_id=None)
        .order_by("-sent_at", "-id")
        .values_list("external_id", "metadata")[:20]
    )
    recipient = next((meta.get("email", {}).get("from") for _, meta in earlier if meta), None)
    recipient = recipient or conversation.customer.email
    if not recipient:
        raise ConnectorError("the customer has no email address", permanent=True)
    mail = EmailMessage()
    mail["From"] = formataddr((message.inbox.name, settings.address))
    mail["To"] = recipient
    subject = " ".join((conversation.subject or "").split())
    mail["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}".strip()
    mail["Message-ID"] = make_msgid(idstring=f"kefu.{message.pk}", domain=settings.domain)
    thread = [ref for ref, _ in reversed(earlier) if ref.startswith("<")]
    if thread:
        mail["In-Reply-To"] = thread[-1]
        mail["References"] = " ".join(thread[-10:])
    mail[KEFU_HEADER] = str(message.pk)
    mail["Auto-Submitted"] = "no"
    mail.set_content(message.text)
    mail.add_alternative(_html(message), subtype="html")
    for attachment in message.attachments.exclude(file=""):
        with attachment.file.open("rb") as handle:
            maintype, _, subtype = attachment.content_type.partition("/")
            mail.add_attachment(
                handle.read(),
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=attachment.filename,
            )
    return mail


def _html(message: Message) -> str:
    if message.html:
        return message.html
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in message.text.split("\n\n"))
    return f"<!DOCTYPE html><html><body>{paragraphs.replace(chr(10), '<br>')}</body></html>"


def _deliver(mail: EmailMessage, settings: EmailSettings) -> None:
    try:
        if settings.smtp_security == "ssl":
            server: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.smtp_host, settings.smtp_port, timeout=TIMEOUT,
                context=ssl.create_default_context(),
            )  # fmt: skip
        else:
            server = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT)
        with server:
            if settings.smtp_security == "starttls":
                server.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                server.login(settings.smtp_user, settings.smtp_password)
            server.send_message(mail)
    except smtplib.SMTPRecipientsRefused as exc:
        raise ConnectorError(f"recipient refused: {exc.recipients}", permanent=True) from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise ConnectorError(
            "SMTP login refused: check the inbox's settings", permanent=True
        ) from exc
    except smtplib.SMTPResponseException as exc:
        permanent = exc.smtp_code >= 500
        raise ConnectorError(
            f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=permanent
        ) from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise ConnectorError(
            f"SMTP server unreachable: {type(exc).__name__}", permanent=False
        ) from exc
