"""Raw RFC 822 mail parsed into ``InboundMessage`` (no database access here).

Python's email package with the modern policy does the MIME work: encoded headers, any charset
it knows (GB2312, GBK, Big5, ISO-8859-x, UTF-8, ...), nested multiparts, attachments. On top:
- mail nobody should answer is recognised and skipped with a reason: auto-replies
  (Auto-Submitted, Precedence, X-Autoreply), bounces (DSN reports, mailer-daemon), and kefu's
  own mail coming back (a loop);
- the quoted history and the signature are cut from the displayed text (the original stays in
  the metadata);
- Message-ID is the idempotency key (a hash of the raw mail when there is none), In-Reply-To
  and References thread the mail into the conversation of the message it answers.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from kefu.conversations.inbound import InboundAttachment, InboundMessage

# Marks mail kefu itself sent, so that it never becomes a conversation when it comes back.
KEFU_HEADER = "X-Kefu-Message"
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_QUOTE_HEADER = re.compile(
    r"^(On .{5,200}wrote:|Le .{5,200}a écrit ?:|Am .{5,200}schrieb.{0,40}:|"
    r"-----\s*Original Message\s*-----|在.{2,100}写道[:：]|.{0,80}كتب[:：])\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_SIGNATURE = re.compile(r"^(-- ?|__+|Sent from my \w+.*)$", re.MULTILINE)


class InvalidMail(ValueError):
    """Not a mail kefu can read (no sender address)."""


@dataclass
class ParsedMail:
    message: InboundMessage | None
    skipped: str = ""  # why no message was made: "auto-reply", "bounce", "loop"


def parse(raw: bytes) -> ParsedMail:
    """Parse one raw mail. Raises InvalidMail when there is no usable sender."""
    mail = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(mail, EmailMessage)
    skipped = _skip_reason(mail)
    if skipped:
        return ParsedMail(None, skipped)
    name, address = _sender(mail)
    text, html, original = _bodies(mail)
    return ParsedMail(
        InboundMessage(
            external_id=_message_id(mail) or f"sha256:{hashlib.sha256(raw).hexdigest()}",
            identities=[("email", address)],
            text=text,
            html=html,
            subject=_header(mail, "Subject")[:300],
            customer_name=name,
            sent_at=_date(mail),
            references=_references(mail),
            attachments=_attachments(mail),
            metadata={"email": {"from": address, "original_text": original[:50_000]}},
        )
    )


def _header(mail: EmailMessage, name: str) -> str:
    try:
        value = mail.get(name)
    except (ValueError, IndexError, TypeError):  # a header the parser cannot decode
        return ""
    return " ".join(str(value or "").split())


def _skip_reason(mail: EmailMessage) -> str:
    if mail.get(KEFU_HEADER):
        return "loop"
    if mail.get_content_type() == "multipart/report" or _sender_is_daemon(mail):
        return "bounce"
    auto = _header(mail, "Auto-Submitted").lower()
    precedence = _header(mail, "Precedence").lower()
    if (auto and auto != "no") or precedence in ("bulk", "junk", "list", "auto_reply"):
        return "auto-reply"
    if mail.get("X-Autoreply") or mail.get("X-Autorespond"):
        return "auto-reply"
    return ""


def _sender_is_daemon(mail: EmailMessage) -> bool:
    sender = _header(mail, "From").lower()
    return "mailer-daemon@" in sender or "postmaster@" in sender


def _sender(mail: EmailMessage) -> tuple[str, str]:
    found = getaddresses([_header(mail, "Reply-To") or _header(mail, "From")])
    for name, address in found:
        if "@" in address and "\n" not in address:
            return name.strip(), address.strip()
    raise InvalidMail("no sender address in From or Reply-To")


def _bodies(mail: EmailMessage) -> tuple[str, str, str]:
    """(text without quoted history or signature, html, the full original text)."""
    plain = mail.get_body(preferencelist=("plain",))
    rich = mail.get_body(preferencelist=("html",))
    original = _content(plain) if plain is not None else ""
    html = _content(rich) if rich is not None else ""
    return _strip_quote(original), html, original


def _content(part: MIMEPart) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError, KeyError):
        # An unknown or lying charset: keep what can be read rather than lose the message.
        payload = part.get_payload(decode=True) or b""
        return bytes(payload).decode("utf-8", errors="replace")


def _strip_quote(text: str) -> str:
    lines = text.splitlines()
    cut = len(lines)
    header = _QUOTE_HEADER.search(text)
    if header:
        cut = text[: header.start()].count("\n")
    kept = lines[:cut]
    while kept and (not kept[-1].strip() or kept[-1].lstrip().startswith(">")):
        kept.pop()
    body = "\n".join(kept)
    signature = _SIGNATURE.search(body)
    if signature and signature.start() > 0:
        body = body[: signature.start()]
    return body.strip() or text.strip()


def _message_id(mail: EmailMessage) -> str:
    found = _MESSAGE_ID.search(_header(mail, "Message-ID"))
    return found.group(0)[:255] if found else ""


def _references(mail: EmailMessage) -> list[str]:
    ids = _MESSAGE_ID.findall(_header(mail, "References")) + _MESSAGE_ID.findall(
        _header(mail, "In-Reply-To")
    )
    return list(dict.fromkeys(i[:255] for i in ids))[-50:]


def _date(mail: EmailMessage):  # type: ignore[no-untyped-def]
    try:
        moment = parsedate_to_datetime(_header(mail, "Date"))
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo is not None else None


def _attachments(mail: EmailMessage) -> list[InboundAttachment]:
    found = []
    for part in mail.iter_attachments():
        payload = part.get_payload(decode=True)
        content = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
        found.append(
            InboundAttachment(
                filename=part.get_filename() or "attachment",
                content_type=part.get_content_type(),
                content=content,
                size=len(content),
            )
        )
    return found
