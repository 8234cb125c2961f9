"""Raw RFC 822 mail parsed into ``InboundMessage`` (no database access here).

Python's email package with the modern policy does the MIME work: encoded headers, any charset
it knows (GB2312, GBK, Big5, ISO-8859-x, UTF-8, ...), nested multiparts, attachments. On top:
- mail nobody should answer is recognised and skipped with a reason: auto-replies
  (Auto-Submitted, Precedence, X-Autoreply), bounces (DSN reports, mailer-daemon), and kefu's
  own mail coming back (a loop);
- the quoted history and the signature are cut from the displayed text (the original stays in
  the metadata);
- Message-ID is the idempotency key (a hash of the raw mail when there is none; the hash is kept
  in the metadata either way), In-Reply-To and References thread the mail into the conversation
  of the message it answers;
- attachments larger than the inbox's limit are recorded as refused (name, size, reason), never
  dropped silently; calendar parts (invitations) are kept as attachments, not read as the body;
- marketplace relay mail (Amazon buyer-seller messages, eBay member messages) is recognised
  and its order numbers extracted (``kefu.connectors.email.relay``).
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message, MIMEPart
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from kefu.connectors.email import relay
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
    relay: str = ""  # "amazon" or "ebay" for marketplace relay mail


def parse(raw: bytes, *, max_attachment_bytes: int | None = None) -> ParsedMail:
    """Parse one raw mail. Raises InvalidMail when there is no usable sender.

    Attachments over ``max_attachment_bytes`` come back refused, without their content.
    """
    mail = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(mail, EmailMessage)
    skipped = _skip_reason(mail)
    if skipped:
        return ParsedMail(None, skipped)
    name, address = _sender(mail)
    plain = mail.get_body(preferencelist=("plain",))
    rich = mail.get_body(preferencelist=("html",))
    text, html, original = _bodies(plain, rich)
    subject = _header(mail, "Subject")[:300]
    attachments = _attachments(mail, [plain, rich], max_attachment_bytes)
    digest = hashlib.sha256(raw).hexdigest()
    metadata: dict = {
        "email": {"from": address, "sha256": digest, "original_text": original[:50_000]}
    }
    listed = _mailing_list(mail)
    if listed:
        # Came through a list (a Google Group as the support address, say): kept, but no rule
        # answers it, so kefu never starts a conversation with a list robot.
        metadata["email"]["mailing_list"] = listed
        metadata["skip_automation"] = True
    refused = [_refusal(item) for item in attachments if item.refused_reason]
    if refused:
        metadata["refused_attachments"] = refused
    found = relay.recognise(address, subject, original or text or html)
    if found is not None:
        metadata["marketplace"] = found.as_metadata()
        metadata["order_numbers"] = list(found.order_numbers)
        if found.platform == "amazon":
            text = relay.buyer_words(text)
    if not (text.strip() or html.strip()):
        # An empty mail (or one of attachments only) is still a mail someone sent: show its
        # subject, so the agent sees what it is about.
        text = subject or ("" if attachments else "(no text)")
    return ParsedMail(
        InboundMessage(
            external_id=_message_id(mail) or f"sha256:{digest}",
            identities=[("email", address)],
            text=text,
            html=html,
            subject=subject,
            customer_name=name,
            sent_at=_date(mail),
            references=_references(mail),
            attachments=attachments,
            metadata=metadata,
        ),
        relay=found.platform if found is not None else "",
    )


def _refusal(item: InboundAttachment) -> dict:
    return {"name": item.filename, "size": item.size, "reason": item.refused_reason}


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
    # "Precedence: list" is not here: a support address that is a Google Group or a mailing
    # list brings every customer's mail with it. Such mail is stored, marked (see parse).
    if (auto and auto != "no") or precedence in ("bulk", "junk", "auto_reply"):
        return "auto-reply"
    if mail.get("X-Autoreply") or mail.get("X-Autorespond"):
        return "auto-reply"
    return ""


def _mailing_list(mail: EmailMessage) -> str:
    """The list a mail came through (its List-Id, else "list" for Precedence: list), or ""."""
    list_id = _header(mail, "List-Id")
    if list_id:
        return list_id[:200]
    return "list" if _header(mail, "Precedence").lower() == "list" else ""


def _sender_is_daemon(mail: EmailMessage) -> bool:
    sender = _header(mail, "From").lower()
    return "mailer-daemon@" in sender or "postmaster@" in sender


def _sender(mail: EmailMessage) -> tuple[str, str]:
    found = getaddresses([_header(mail, "Reply-To") or _header(mail, "From")])
    for name, address in found:
        if "@" in address and "\n" not in address:
            return name.strip(), address.strip()
    raise InvalidMail("no sender address in From or Reply-To")


def _bodies(plain: MIMEPart | None, rich: MIMEPart | None) -> tuple[str, str, str]:
    """(text without quoted history or signature, html, the full original text)."""
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


def _attachments(
    mail: EmailMessage, bodies: list[MIMEPart | None], limit: int | None
) -> list[InboundAttachment]:
    """Every part that is not the text or HTML body shown: attachments, inline images (inside
    multipart/related), calendar invitations (beside the text in multipart/alternative, where
    ``iter_attachments`` does not look), further text parts, forwarded mail (whole). Nothing a
    customer sent is dropped."""
    shown = {id(part) for part in bodies if part is not None}
    found: list[EmailMessage | MIMEPart] = []

    def visit(part: EmailMessage | MIMEPart) -> None:
        if part.get_content_type() == "message/rfc822":
            found.append(part)  # kept whole, not taken apart
        elif part.is_multipart():
            for child in part.iter_parts():
                visit(child)
        elif id(part) not in shown:
            found.append(part)

    visit(mail)
    return [_attachment(part, limit) for part in found]


def _is_calendar(part: EmailMessage | MIMEPart) -> bool:
    return part.get_content_type() in ("text/calendar", "application/ics")


def _attachment(part: EmailMessage | MIMEPart, limit: int | None) -> InboundAttachment:
    content = _payload(part)
    default_name = _default_name(part)
    item = InboundAttachment(
        filename=_filename(part) or default_name,
        content_type=part.get_content_type(),
        content=content,
        size=len(content),
    )
    if limit is not None and item.size > limit:
        item.content = None
        item.refused_reason = f"larger than the inbox limit of {limit} bytes"
    return item


def _default_name(part: EmailMessage | MIMEPart) -> str:
    content_type = part.get_content_type()
    if _is_calendar(part):
        return "invite.ics"
    if content_type == "message/rfc822":
        return "forwarded.eml"
    extension = mimetypes.guess_extension(content_type) or ""
    return f"{'image' if content_type.startswith('image/') else 'attachment'}{extension}"


def _payload(part: EmailMessage | MIMEPart) -> bytes:
    """The part's bytes; a forwarded mail (message/rfc822) as the whole mail, an .eml file."""
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        forwarded = inner[0] if isinstance(inner, list) and inner else None
        if not isinstance(forwarded, Message):
            return b""
        try:
            return bytes(forwarded.as_bytes(policy=policy.SMTP))
        except (LookupError, UnicodeError, ValueError):  # a broken inner mail: keep its text
            return str(forwarded).encode("utf-8", errors="replace")
    payload = part.get_payload(decode=True)
    return bytes(payload) if isinstance(payload, bytes | bytearray) else b""


def _filename(part: EmailMessage | MIMEPart) -> str:
    try:
        return " ".join(str(part.get_filename() or "").split())
    except (ValueError, IndexError, TypeError):  # an undecodable RFC 2231 name
        return ""
