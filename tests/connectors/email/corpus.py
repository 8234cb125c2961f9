"""A mailbox of real-world-shaped mail, generated (no fixture files), with the expected result.

Shapes, as mail programs and services send them: plain text in GB2312, GBK, Big5, ISO-8859-1
and UTF-8 with RFC 2047 encoded subjects and names (Foxmail, old Outlook), HTML-only mail,
attachments, inline pictures, calendar invitations, replies threaded by In-Reply-To, mail
without a Message-ID, Amazon buyer-seller relay mail, DSN bounces and auto-replies (which must
not be stored), and duplicates: the same mail in two folders (Gmail labels, a filter copying).

Each customer's mails fall within a few hours, so a customer's mails make exactly one
conversation; the expected number of conversations is the number of customers with stored mail.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.header import Header
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr

CRLF = policy.compat32.clone(linesep="\r\n")
SHOP = "support@shop.example"

TEXTS = {
    "gb2312": ("王伟", "订单什么时候发货", "你好，我的订单还没有收到，请帮我查一下物流。谢谢！"),
    "gbk": ("李娜", "退货申请", "您好，我想退回这件衣服，尺码不合适。請問怎么办？"),
    "big5": ("陳美玲", "請問出貨時間", "您好，請問我的訂單何時出貨？謝謝。"),
    "iso-8859-1": ("José Núñez", "¿Dónde está mi pedido?", "Hola, mi pedido no ha llegado aún."),
    "utf-8": ("Zoë Müller", "Wo ist meine Bestellung? 📦", "Hallo, die Bestellung fehlt. Grüße"),
}  # fmt: skip
CHARSETS = list(TEXTS)


@dataclass
class Expected:
    """What one inbox must hold after ingestion."""

    keys: set[str] = field(default_factory=set)
    customers: set[str] = field(default_factory=set)
    files: dict[str, int] = field(default_factory=dict)  # key -> attachments the mail has

    @property
    def messages(self) -> int:
        return len(self.keys)

    @property
    def conversations(self) -> int:
        return len(self.customers)

    @property
    def attachments(self) -> int:
        return sum(self.files.values())


@dataclass
class Corpus:
    mails: list[tuple[str, bytes]] = field(default_factory=list)  # (folder, raw), in order
    expected: dict[str, Expected] = field(default_factory=lambda: defaultdict(Expected))
    skipped: int = 0  # bounces and auto-replies appended (copies included)

    def by_folder(self) -> dict[str, list[bytes]]:
        folders: dict[str, list[bytes]] = defaultdict(list)
        for folder, raw in self.mails:
            folders[folder].append(raw)
        return folders


class _Builder:
    def __init__(self, seed: int, label: str, relay_target: str) -> None:
        self.random = random.Random(seed)
        self.label = label  # keeps addresses and ids apart between mailboxes of one test
        self.relay_target = relay_target
        self.corpus = Corpus()
        self.now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
        self.first_ids: dict[str, str] = {}  # customer -> Message-ID of their first mail
        self.base_times: dict[str, datetime] = {}
        self.counter = 0

    def build(self, total: int) -> Corpus:
        kinds = [
            (self.customer_mail, 44), (self.html_only, 10), (self.with_attachment, 10),
            (self.without_message_id, 8), (self.amazon, 10), (self.calendar, 2),
            (self.inline_image, 4),
            (self.bounce, 6), (self.auto_reply, 6),
        ]  # fmt: skip
        makers = [maker for maker, weight in kinds for _ in range(weight)]
        while len(self.corpus.mails) < total:
            raw, target, customer, key, files = self.random.choice(makers)()
            copies = ["INBOX"]
            if len(self.corpus.mails) + 1 < total and self.random.random() < 0.08:
                copies.append("Archive")  # the same mail in a second folder
            for folder in copies:
                self.corpus.mails.append((folder, raw))
            if target is None:
                self.corpus.skipped += len(copies)
            else:
                self.corpus.expected[target].keys.add(key)
                self.corpus.expected[target].files[key] = files
                self.corpus.expected[target].customers.add(customer)
        return self.corpus

    # --- the shapes -------------------------------------------------------------------------

    def _customer(self, pool: int = 250) -> str:
        number = self.random.randrange(pool)
        return f"c{number}.{self.label}@mail{number % 9}.example"

    def _headers(self, mail: Message, customer: str, name: str, charset: str, subject: str,
                 *, message_id: bool = True) -> str:  # fmt: skip
        self.counter += 1
        mail["From"] = formataddr((str(Header(name, charset)), customer))
        mail["To"] = SHOP
        mail["Subject"] = Header(subject, charset)
        base = self.base_times.setdefault(
            customer, self.now - timedelta(days=self.random.randrange(30))
        )
        mail["Date"] = format_datetime(base + timedelta(minutes=self.counter % 180))
        key = ""
        if message_id:
            key = f"<{self.label}.{self.counter}.{self.random.getrandbits(32):x}@mail.example>"
            mail["Message-ID"] = key
        first = self.first_ids.get(customer)
        if first:
            mail["In-Reply-To"] = first
            mail["References"] = first
        elif key:
            self.first_ids[customer] = key
        return key

    def _done(self, mail: Message, key: str, customer: str, target: str | None = "mailbox",
              files: int = 0):  # type: ignore[no-untyped-def]  # fmt: skip
        raw = mail.as_bytes(policy=CRLF)
        return raw, target, customer, key or f"sha256:{hashlib.sha256(raw).hexdigest()}", files

    def customer_mail(self):  # type: ignore[no-untyped-def]
        charset = self.random.choice(CHARSETS)
        name, subject, text = TEXTS[charset]
        customer = self._customer()
        mail = MIMEText(f"{text}\n\n{self.counter}", "plain", charset)
        key = self._headers(mail, customer, name, charset, subject)
        return self._done(mail, key, customer)

    def html_only(self):  # type: ignore[no-untyped-def]
        customer = self._customer()
        mail = MIMEText(
            f"<html><body><p>Hi,</p><p>order <b>#{1000 + self.counter}</b> arrived broken.</p>"
            "<blockquote>earlier</blockquote></body></html>",
            "html",
            "utf-8",
        )
        key = self._headers(mail, customer, "Ana Ruiz", "utf-8", "Broken on arrival")
        return self._done(mail, key, customer)

    def with_attachment(self):  # type: ignore[no-untyped-def]
        customer = self._customer()
        mail = MIMEMultipart("mixed")
        mail.attach(MIMEText("Photo of the damage attached.", "plain", "utf-8"))
        photo = MIMEApplication(self.random.randbytes(2048), "octet-stream")
        photo.add_header("Content-Disposition", "attachment", filename=("utf-8", "", "破损.jpg"))
        mail.attach(photo)
        key = self._headers(mail, customer, "Tom Lee", "utf-8", "Damaged item")
        return self._done(mail, key, customer, files=1)

    def without_message_id(self):  # type: ignore[no-untyped-def]
        customer = self._customer()
        mail = MIMEText(f"Sent from a web form, no Message-ID. Ref {self.counter}", "plain")
        self._headers(mail, customer, "Form", "us-ascii", "Contact form", message_id=False)
        return self._done(mail, "", customer)

    def calendar(self):  # type: ignore[no-untyped-def]
        customer = self._customer()
        mail = MIMEMultipart("alternative")
        mail.attach(MIMEText("Call about my order?", "plain", "utf-8"))
        invite = MIMEBase("text", "calendar", method="REQUEST", charset="utf-8")
        invite.set_payload("BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n")
        mail.attach(invite)
        key = self._headers(mail, customer, "Kim", "utf-8", "Invitation: call")
        return self._done(mail, key, customer, files=1)

    def inline_image(self):  # type: ignore[no-untyped-def]
        # Outlook's shape for a pasted picture: alternative(text, related(html, image)).
        customer = self._customer()
        related = MIMEMultipart("related")
        related.attach(MIMEText('<p>Look: <img src="cid:pic1@mail"></p>', "html", "utf-8"))
        picture = MIMEImage(b"\x89PNG\r\n\x1a\n" + self.random.randbytes(512), "png")
        picture.add_header("Content-ID", "<pic1@mail>")
        related.attach(picture)
        mail = MIMEMultipart("alternative")
        mail.attach(MIMEText("Look: [picture]", "plain", "utf-8"))
        mail.attach(related)
        key = self._headers(mail, customer, "Mia", "utf-8", "Scratch on the lid")
        return self._done(mail, key, customer, files=1)

    def amazon(self):  # type: ignore[no-untyped-def]
        buyer = f"{self.label}{self.random.randrange(60):04x}@marketplace.amazon.com"
        digits = [self.random.randrange(10**7) for _ in range(2)]
        order = f"{self.random.randrange(100, 999)}-{digits[0]:07d}-{digits[1]:07d}"
        mail = MIMEText(
            "------------- Message: -------------\n\n"
            f"Hello, where is my order {order}?\n\n"
            "------------- End message -------------\n\n"
            "For Your Information: To help arrive at a resolution, please respond within 24 hours.",
            "plain",
            "utf-8",
        )
        key = self._headers(
            mail, buyer, "Anna - Amazon Marketplace", "utf-8",
            f"Inquiry from Amazon customer Anna (Order: {order})",
        )  # fmt: skip
        return self._done(mail, key, buyer, self.relay_target)

    def bounce(self):  # type: ignore[no-untyped-def]
        # A DSN (RFC 3464) as Postfix writes it; written out, since the email package cannot
        # build a message/delivery-status part.
        self.counter += 1
        raw = (
            "From: Mail Delivery System <MAILER-DAEMON@mx.shop.example>\r\n"
            f"To: {SHOP}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            f"Date: {format_datetime(self.now)}\r\n"
            f"Message-ID: <bounce.{self.label}.{self.counter}@mx.shop.example>\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain\r\n\r\n"
            "Delivery to the following recipient failed permanently.\r\n\r\n"
            "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.shop.example\r\n\r\n"
            "Final-Recipient: rfc822; gone@mail.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            "\r\n--b1--\r\n"
        )
        return raw.encode(), None, "", "", 0

    def auto_reply(self):  # type: ignore[no-untyped-def]
        customer = self._customer()
        mail = MIMEText("I am out of the office until Monday.", "plain", "utf-8")
        mail["Auto-Submitted"] = "auto-replied"
        self._headers(mail, customer, "Out of office", "utf-8", "Automatic reply: Your order",
                      message_id=False)  # fmt: skip
        return self._done(mail, "", "", None)


def build(total: int = 1000, *, seed: int = 20261123, label: str = "a",
          relay_target: str = "marketplace") -> Corpus:  # fmt: skip
    """``total`` mails to append (copies included); relay mail is expected on ``relay_target``."""
    return _Builder(seed, label, relay_target).build(total)
