"""What the email connector does with mail beyond reading it: marketplace relay mail, oversized
attachments, calendar parts, a flooding sender, the signed reply token, and replies that no
field can inject a header into (through a real SMTP server, aiosmtpd)."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from kefu.connectors.base import ConnectorError
from kefu.connectors.email import config, inbound, outbound, relay, tokens
from kefu.conversations import actions
from kefu.conversations.models import Attachment, Conversation, InboxKind, Message
from tests.factories import AgentFactory, InboxFactory

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[3] / "kefu/connectors/email/fixtures"
TOKEN = "ingest-token-5d2e"


@pytest.fixture
def inbox():
    inbox = InboxFactory(kind=InboxKind.EMAIL, name="Lumen Support")
    config.configure(inbox, address="support@shop.example", ingest_token=TOKEN)
    inbox.save()
    return inbox


def post(client, inbox, raw: bytes):
    return client.post(
        f"/connectors/email/{inbox.pk}/inbound",
        raw,
        content_type="message/rfc822",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


def mail(
    body: str = "Where is my order?",
    *,
    sender: str = "ana@example.com",
    message_id: str = "<h1@mail.example>",
    date: str = "Mon, 23 Nov 2026 10:00:00 +0000",
    headers: dict | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Ana <{sender}>"
    message["To"] = "support@shop.example"
    message["Subject"] = "Order"
    message["Date"] = date
    message["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message


def raw(message: EmailMessage) -> bytes:
    return message.as_bytes(policy=policy.SMTP)


# --- marketplace relay mail ------------------------------------------------------------------


def test_amazon_relay_mail_is_recognised_with_its_order_number():
    parsed = inbound.parse((FIXTURES / "amazon_buyer_message.eml").read_bytes())

    assert parsed.relay == "amazon" and parsed.message is not None
    assert parsed.message.metadata["marketplace"] == {
        "platform": "amazon",
        "order_numbers": ["302-4567890-1234567"],
    }
    assert parsed.message.metadata["order_numbers"] == ["302-4567890-1234567"]
    # The buyer's words, without Amazon's frame (the original stays in the metadata)
    assert parsed.message.text.startswith("Hallo, meine Bestellung 302-4567890-1234567")
    assert "Ende der Nachricht" not in parsed.message.text
    assert "Ende der Nachricht" in parsed.message.metadata["email"]["original_text"]


def test_ebay_member_mail_is_recognised_with_order_and_item_numbers():
    parsed = inbound.parse((FIXTURES / "ebay_member_message.eml").read_bytes())

    assert parsed.relay == "ebay" and parsed.message is not None
    assert parsed.message.metadata["marketplace"] == {
        "platform": "ebay",
        "order_numbers": ["21-13579-24680"],
        "item_numbers": ["334455667788"],
    }


@pytest.mark.parametrize(
    ("sender", "platform"),
    [
        ("x1@marketplace.amazon.com", "amazon"),
        ("x1@marketplace.amazon.co.uk", "amazon"),
        ("x1@marketplace.amazon.co.jp", "amazon"),
        ("x1@members.ebay.de", "ebay"),
        ("x1@amazon.com", None),  # Amazon's own notices are not buyer messages
        ("x1@marketplace.amazon.com.evil.example", None),
        ("x1@members.ebay.com.evil.example", None),
    ],
)
def test_only_the_relay_domains_count_as_marketplace_mail(sender, platform):
    found = relay.recognise(sender, "Order 123-1234567-1234567", "")
    assert (found.platform if found else None) == platform


def test_relay_mail_goes_on_the_marketplace_inbox_when_one_is_configured(client, inbox):
    amazon = InboxFactory(kind=InboxKind.MARKETPLACE, name="Amazon DE")
    config.configure(inbox, marketplace_inbox_id=amazon.pk)
    inbox.save()

    answer = post(client, inbox, (FIXTURES / "amazon_buyer_message.eml").read_bytes())
    ordinary = post(client, inbox, raw(mail()))

    assert (answer.status_code, ordinary.status_code) == (202, 202)
    relayed = Message.objects.get(metadata__marketplace__platform="amazon")
    assert relayed.inbox_id == amazon.pk and relayed.conversation.inbox_id == amazon.pk
    assert Message.objects.get(external_id="<h1@mail.example>").inbox_id == inbox.pk


def test_relay_mail_stays_flagged_on_the_email_inbox_without_a_marketplace_inbox(client, inbox):
    post(client, inbox, (FIXTURES / "ebay_member_message.eml").read_bytes())

    stored = Message.objects.get()
    assert stored.inbox_id == inbox.pk
    assert stored.metadata["marketplace"]["platform"] == "ebay"


# --- attachments and calendar parts --------------------------------------------------------------


def test_an_oversized_attachment_is_recorded_as_refused_never_dropped(client, inbox, settings):
    settings.MEDIA_ROOT = str(Path(settings.VAR_DIR) / "media-test")
    config.configure(inbox, max_attachment_bytes=1000)
    inbox.save()
    message = mail()
    message.add_attachment(b"x" * 5000, maintype="application", subtype="pdf", filename="big.pdf")
    message.add_attachment(b"y" * 300, maintype="image", subtype="png", filename="small.png")

    assert post(client, inbox, raw(message)).status_code == 202

    stored = Message.objects.get()
    files = {a.filename: a for a in Attachment.objects.filter(message=stored)}
    assert files["big.pdf"].size == 5000 and not files["big.pdf"].file
    assert files["big.pdf"].refused_reason == "larger than the inbox limit of 1000 bytes"
    assert files["small.png"].size == 300 and files["small.png"].file
    assert files["small.png"].refused_reason == ""
    assert stored.metadata["refused_attachments"] == [
        {"name": "big.pdf", "size": 5000, "reason": "larger than the inbox limit of 1000 bytes"}
    ]


def test_a_calendar_invitation_is_an_attachment_not_the_text(client, inbox, settings):
    settings.MEDIA_ROOT = str(Path(settings.VAR_DIR) / "media-test")
    message = mail("Can we talk about my order on Monday?")
    message.add_alternative(
        "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nSUMMARY:Call\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n",
        subtype="calendar",
        params={"method": "REQUEST"},
    )

    post(client, inbox, raw(message))

    stored = Message.objects.get()
    assert stored.text == "Can we talk about my order on Monday?"
    [invite] = Attachment.objects.filter(message=stored)
    assert (invite.filename, invite.content_type) == ("invite.ics", "text/calendar")


def test_a_mail_that_is_only_a_calendar_part_is_still_stored(client, inbox, settings):
    settings.MEDIA_ROOT = str(Path(settings.VAR_DIR) / "media-test")
    message = mail()
    message.set_content(
        "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", subtype="calendar", params={"method": "REQUEST"}
    )

    assert post(client, inbox, raw(message)).status_code == 202

    stored = Message.objects.get()
    assert stored.text == "Order"  # the subject stands in for the missing text
    assert Attachment.objects.get(message=stored).content_type == "text/calendar"


# --- a flooding sender ------------------------------------------------------------------------


def test_a_flooding_sender_is_stored_but_flagged_beyond_the_hourly_limit(client, inbox):
    config.configure(inbox, flood_per_hour=3)
    inbox.save()

    for n in range(5):
        message = mail(
            f"Mail {n}", message_id=f"<f{n}@mail.example>",
            date=f"Mon, 23 Nov 2026 10:{n * 5:02d}:00 +0000",
        )  # fmt: skip
        assert post(client, inbox, raw(message)).status_code in (200, 202)
    # ...and one from someone else at the same time
    post(client, inbox, raw(mail(sender="bo@example.com", message_id="<other@mail.example>")))

    flagged = {
        m.external_id: bool(m.metadata.get("suspected_flood"))
        for m in Message.objects.order_by("sent_at", "id")
    }
    assert flagged == {
        "<f0@mail.example>": False,
        "<f1@mail.example>": False,
        "<f2@mail.example>": False,
        "<f3@mail.example>": True,
        "<f4@mail.example>": True,
        "<other@mail.example>": False,
    }
    last = Message.objects.get(external_id="<f4@mail.example>")
    assert last.metadata["skip_automation"] is True
    assert last.metadata["suspected_flood"] == {
        "sender": "ana@example.com",
        "mails_in_last_hour": 5,
        "limit": 3,
    }


def test_mails_an_hour_apart_are_no_flood(client, inbox):
    config.configure(inbox, flood_per_hour=1)
    inbox.save()
    for n, hour in enumerate((8, 10, 12)):
        message = mail(
            message_id=f"<s{n}@mail.example>", date=f"Mon, 23 Nov 2026 {hour}:00:00 +0000"
        )
        post(client, inbox, raw(message))
    assert not any(m.metadata.get("suspected_flood") for m in Message.objects.all())


# --- the signed reply token ------------------------------------------------------------------


def test_a_reply_carrying_our_token_threads_into_its_conversation_without_stored_references(
    client, inbox
):
    # Given a conversation, and a second customer address writing about it later
    post(client, inbox, raw(mail()))
    conversation = Conversation.objects.get()
    ours = tokens.message_id(message_id=999, conversation_id=conversation.pk, domain="shop.example")
    assert not Message.objects.filter(external_id=ours).exists()  # never stored

    # When a mail from another address answers a Message-ID carrying the conversation's token
    answer = mail(
        "Answering for my wife", sender="ben@example.com", message_id="<r1@mail.example>",
        headers={"In-Reply-To": ours, "References": ours},
    )  # fmt: skip
    post(client, inbox, raw(answer))

    # Then it lands in that conversation
    assert Message.objects.get(external_id="<r1@mail.example>").conversation_id == conversation.pk


@pytest.mark.parametrize(
    "forge",
    [
        lambda c: f"<kefu.1.{c}.{'0' * 24}.abcd@shop.example>",  # made-up signature
        lambda c: tokens.message_id(message_id=1, conversation_id=c + 1, domain="x").replace(
            f".{c + 1}.", f".{c}.", 1
        ),  # another conversation's signature
    ],
)
def test_a_forged_token_threads_nothing(client, inbox, forge):
    post(client, inbox, raw(mail()))
    conversation = Conversation.objects.get()

    answer = mail(
        "Let me in", sender="mallory@example.com", message_id="<x1@mail.example>",
        headers={"In-Reply-To": forge(conversation.pk)},
    )  # fmt: skip
    post(client, inbox, raw(answer))

    assert Message.objects.get(external_id="<x1@mail.example>").conversation_id != conversation.pk
    assert tokens.conversation_in([forge(conversation.pk)]) is None


def test_a_token_of_another_inbox_threads_nothing(client, inbox):
    other = InboxFactory(kind=InboxKind.EMAIL)
    config.configure(other, address="help@other.example", ingest_token=TOKEN)
    other.save()
    post(client, other, raw(mail(message_id="<o1@mail.example>")))
    foreign = Conversation.objects.get()
    token = tokens.message_id(message_id=1, conversation_id=foreign.pk, domain="other.example")

    post(client, inbox, raw(mail(message_id="<o2@mail.example>", headers={"In-Reply-To": token})))

    assert Message.objects.get(external_id="<o2@mail.example>").conversation.inbox_id == inbox.pk


# --- replies: no header injection, HTML and text, attachments ---------------------------------


def _conversation(client, inbox) -> Conversation:
    post(client, inbox, raw(mail()))
    return Conversation.objects.get()


def test_the_reply_is_threaded_html_and_text_with_attachments_and_our_token(
    client, inbox, smtp_server, settings
):
    settings.MEDIA_ROOT = str(Path(settings.VAR_DIR) / "media-test")
    conversation = _conversation(client, inbox)
    reply = actions.reply(conversation=conversation, actor=AgentFactory(), text="Label attached.")
    reply.attachments.create(
        filename="label.pdf", content_type="application/pdf", size=4,
        file=ContentFile(b"%PDF", name="label.pdf"),
    )  # fmt: skip

    outbound.send(reply)

    [(_, recipients, data)] = smtp_server.received
    sent = message_from_bytes(data, policy=policy.default)
    assert recipients == ["ana@example.com"]
    assert sent["In-Reply-To"] == "<h1@mail.example>"
    assert tokens.conversation_in([sent["Message-ID"]]) == conversation.pk
    assert sent.get_body(("plain",)).get_content().strip() == "Label attached."
    assert "<p>Label attached.</p>" in sent.get_body(("html",)).get_content()
    [attached] = list(sent.iter_attachments())
    assert (attached.get_filename(), attached.get_content()) == ("label.pdf", b"%PDF")


def _sent_headers(smtp_server) -> tuple[list[str], list[str]]:
    [(_, recipients, data)] = smtp_server.received
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    names = [line.split(":", 1)[0].lower() for line in head.split("\r\n") if line[:1].strip()]
    return recipients, names


def test_no_header_can_be_injected_through_the_inbox_name(client, inbox, smtp_server):
    conversation = _conversation(client, inbox)
    inbox.name = "Support\r\nBcc: victim@example.com"
    inbox.save()
    reply = actions.reply(conversation=conversation, actor=AgentFactory(), text="Hi")

    outbound.send(reply)

    recipients, names = _sent_headers(smtp_server)
    assert recipients == ["ana@example.com"] and "bcc" not in names


def test_no_header_can_be_injected_through_an_attachment_name(client, inbox, smtp_server, settings):
    settings.MEDIA_ROOT = str(Path(settings.VAR_DIR) / "media-test")
    conversation = _conversation(client, inbox)
    reply = actions.reply(conversation=conversation, actor=AgentFactory(), text="Hi")
    reply.attachments.create(
        filename="a.pdf\r\nBcc: victim@example.com", content_type="application/pdf", size=1,
        file=ContentFile(b"x", name="a.pdf"),
    )  # fmt: skip

    outbound.send(reply)

    recipients, names = _sent_headers(smtp_server)
    assert recipients == ["ana@example.com"] and "bcc" not in names


@pytest.mark.parametrize(
    "address",
    [
        "ana@example.com\r\nBcc: victim@example.com",
        "ana@example.com, victim@example.com",
        "ana@example.com\nX-Evil: 1",
    ],
)
def test_a_recipient_smuggling_a_header_or_a_second_address_is_refused(
    client, inbox, smtp_server, address
):
    conversation = _conversation(client, inbox)
    Message.objects.filter(direction="inbound").update(metadata={"email": {"from": address}})
    reply = actions.reply(conversation=conversation, actor=AgentFactory(), text="Hi")

    with pytest.raises(ConnectorError) as refused:
        outbound.send(reply)

    assert refused.value.permanent is True
    assert smtp_server.received == []


def test_rules_leave_flood_mail_alone(transactional_db, settings):
    # Given a rule tagging every received message, and an inbox flagging a second mail an hour
    from kefu.automation import actions as automation
    from kefu.automation import config as automation_config
    from kefu.automation.models import BusinessHours

    settings.KEFU_AUTOMATION_SYNC = True
    BusinessHours.objects.all().delete()
    automation.bump_config()
    automation_config.invalidate()
    automation.save_rule(
        actor=None,
        data={
            "name": "tag all",
            "trigger": "message_received",
            "conditions": {},
            "actions": [{"type": "add_tags", "tags": ["hit"]}],
        },
    )
    inbox = InboxFactory(kind=InboxKind.EMAIL, thread_window_hours=0)
    config.configure(inbox, address="support@shop.example", flood_per_hour=1)
    inbox.save()

    # When the same sender writes twice within the hour
    from kefu.connectors.email.ingest import store_mail

    first = store_mail(inbox, raw(mail(message_id="<t1@mail.example>")))
    second = store_mail(
        inbox, raw(mail(message_id="<t2@mail.example>", date="Mon, 23 Nov 2026 10:10:00 +0000"))
    )

    # Then the rule ran for the first mail only; the second is stored, flagged, untouched
    assert first.conversation_id != second.conversation_id
    tags = {c.pk: sorted(c.tags.values_list("name", flat=True)) for c in Conversation.objects.all()}
    assert tags == {first.conversation_id: ["hit"], second.conversation_id: []}
    assert Message.objects.get(pk=second.message_id).metadata["suspected_flood"]["limit"] == 1
    automation_config.invalidate()


def test_an_admin_sees_the_mailbox_cursors_read_only(admin_client, inbox):
    from kefu.connectors.email.models import MailboxCursor

    cursor = MailboxCursor.objects.create(
        inbox=inbox, folder="INBOX", uidvalidity=7, last_uid=42, last_error="LoginError: no"
    )

    listing = admin_client.get("/admin/mail/mailboxcursor/")
    detail = admin_client.get(f"/admin/mail/mailboxcursor/{cursor.pk}/change/")

    assert listing.status_code == 200 and b"LoginError: no" in listing.content
    assert detail.status_code == 200 and b'name="last_uid"' not in detail.content
    assert admin_client.get("/admin/mail/mailboxcursor/add/").status_code == 403


def test_a_forwarded_mail_is_kept_whole_as_an_eml_attachment(client, inbox, settings):
    settings.MEDIA_ROOT = str(Path(settings.VAR_DIR) / "media-test")
    original = mail("The parcel never came.", sender="wei@example.cn", message_id="<o@x.cn>")
    forward = mail("Forwarding my husband's mail, see below.", message_id="<fwd@mail.example>")
    forward.add_attachment(original)

    post(client, inbox, raw(forward))

    [attached] = Attachment.objects.filter(message__external_id="<fwd@mail.example>")
    assert (attached.filename, attached.content_type) == ("forwarded.eml", "message/rfc822")
    with attached.file.open("rb") as handle:
        kept = message_from_bytes(handle.read(), policy=policy.default)
    assert kept["Message-ID"] == "<o@x.cn>"
    assert kept.get_content().strip() == "The parcel never came."


# --- settings --------------------------------------------------------------------------------


def test_imap_settings_are_stored_with_the_password_encrypted(inbox, monkeypatch):
    from django.core.management import call_command

    monkeypatch.setenv("IMAP_PW", "s3cret-imap")
    call_command(
        "configure_channel", "--inbox", str(inbox.pk), "imap_host=imap.example.com",
        "imap_security=starttls", "imap_user=support", "imap_password=env:IMAP_PW",
        "imap_folders=INBOX, Amazon ,INBOX", "max_attachment_bytes=1048576",
    )  # fmt: skip

    inbox.refresh_from_db()
    assert "s3cret-imap" not in str(inbox.config)
    stored = config.settings_of(inbox)
    assert (stored.imap_host, stored.imap_port, stored.imap_security) == (
        "imap.example.com", 143, "starttls",
    )  # fmt: skip
    assert stored.imap_password == "s3cret-imap" and stored.polls_imap
    assert stored.imap_folders == ("INBOX", "Amazon")
    assert stored.max_attachment_bytes == 1048576


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"imap_hots": "x"}, "unknown email setting(s): imap_hots"),
        ({"imap_port": "abc"}, "imap_port must be a positive whole number"),
        ({"max_attachment_bytes": "-1"}, "max_attachment_bytes must be a positive whole number"),
        ({"imap_security": "tls"}, "imap_security must be one of starttls, ssl, none"),
        ({"imap_since_days": "-1"}, "imap_since_days must be 0 or a positive whole number"),
    ],
)
def test_a_wrong_setting_is_an_error_not_ignored(inbox, values, error):
    before = dict(inbox.config)
    with pytest.raises(ValueError, match=re.escape(error)):
        config.configure(inbox, **values)
    assert inbox.config == before


def test_inline_images_and_further_text_parts_are_kept_as_attachments(client, inbox, settings):
    # Given an HTML mail with an inline image (multipart/related inside the alternative), and
    # a text part after it (as Apple Mail splits text around a pasted picture)
    settings.MEDIA_ROOT = str(Path(settings.VAR_DIR) / "media-test")
    message = mail("See the photo.")
    message.add_alternative('<p>See <img src="cid:photo1@x"></p>', subtype="html")
    message.get_payload()[1].add_related(
        b"\x89PNG-photo", maintype="image", subtype="png", cid="<photo1@x>"
    )
    message.make_mixed()
    message.attach(_text_part("And the box was open too."))

    post(client, inbox, raw(message))

    stored = Message.objects.get()
    assert stored.text == "See the photo."
    files = sorted(
        (a.filename, a.content_type, a.size) for a in Attachment.objects.filter(message=stored)
    )
    assert files == [
        ("attachment.txt", "text/plain", 27),
        ("image.png", "image/png", 10),
    ]  # text + newline


def _text_part(text: str) -> EmailMessage:
    part = EmailMessage()
    part.set_content(text)
    del part["MIME-Version"]
    return part


def test_poll_mail_enqueue_starts_the_periodic_pass_on_the_worker(forget_scheduled_ticks):
    from django.core.management import call_command

    from kefu.connectors.email.tasks import poll_mail_tick

    out = StringIO()
    call_command("poll_mail", "--enqueue", stdout=out)

    assert out.getvalue().strip() == "the background worker now polls mail periodically"
    if poll_mail_tick.get_backend().__class__.__name__ == "DatabaseBackend":
        from django_tasks_db.models import DBTaskResult

        [queued] = DBTaskResult.objects.filter(task_path__endswith="poll_mail_tick")
        assert queued.run_after is not None


def test_mail_through_a_google_group_is_stored_but_left_to_agents(client, inbox):
    # Given the support address is a Google Group, which marks every mail it passes on
    message = mail(
        "My order never came.",
        headers={
            "Precedence": "list",
            "List-Id": "<support.shop.example>",
            "Mailing-list": "list support@shop.example; contact support+owners@shop.example",
        },
    )

    # When it arrives, then it is stored (it is a customer's mail), marked so no rule answers
    assert post(client, inbox, raw(message)).status_code == 202
    stored = Message.objects.get()
    assert stored.metadata["email"]["mailing_list"] == "<support.shop.example>"
    assert stored.metadata["skip_automation"] is True
