"""Replies by SMTP: threaded (In-Reply-To, References), text and HTML, attachments, a
Message-ID of kefu's own carrying the signed reply token (kefu.connectors.email.tokens, so the
customer's answer threads back), and a header marking kefu's mail so that it never comes back
in as a conversation.

No header injection from any field: every value that reaches a header (the subject, the inbox's
name, the recipient, attachment names) has its line breaks and runs of whitespace collapsed
first, the recipient must be exactly one address, and Python's email package refuses line
breaks in header values anyway (a refusal is a permanent failure, never a retry loop).
"""

from __future__ import annotations

import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, getaddresses

from kefu.connectors.base import ConnectorError, SendResult, register_sender
from kefu.connectors.email import tokens
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
    try:
        mail = build(message, settings)
    except ValueError as exc:  # a header value the email package refuses
        raise ConnectorError(f"the reply cannot be written as mail: {exc}", permanent=True) from exc
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
    recipient = _one_address(recipient or conversation.customer.email)
    mail = EmailMessage()
    mail["From"] = formataddr((_one_line(message.inbox.name), _one_address(settings.address)))
    mail["To"] = recipient
    subject = _one_line(conversation.subject or "")
    mail["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}".strip()
    mail["Message-ID"] = tokens.message_id(
        message_id=message.pk, conversation_id=conversation.pk, domain=settings.domain
    )
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
                filename=_one_line(attachment.filename) or "attachment",
            )
    return mail


def _one_line(value: str) -> str:
    """Whitespace (line breaks included) collapsed: a header value can never start a new one."""
    return " ".join(value.split())


def _one_address(value: str | None) -> str:
    """Exactly one plain address, or a permanent failure: never a list a line break smuggled in."""
    raw = value or ""
    if not raw.strip():
        raise ConnectorError("the customer has no email address", permanent=True)
    found = getaddresses([raw])
    address = found[0][1] if len(found) == 1 else ""
    broken = any(c in raw for c in "\r\n\x00") or any(c.isspace() for c in address)
    if broken or address.count("@") != 1:
        raise ConnectorError(f"not a single email address: {raw!r}", permanent=True)
    return address


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
