"""Email: raw mail in (charsets, encoded headers, attachments, quoting, auto-replies, bounces,
loops, idempotency, threading) and replies out through a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import socket
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from kefu.connectors.base import ConnectorError
from kefu.connectors.email import config, inbound, outbound
from kefu.conversations import actions
from kefu.conversations.models import Conversation, Message
from tests.factories import AgentFactory, InboxFactory

pytestmark = pytest.mark.django_db

TOKEN = "ingest-token-9c1f"


def mail(
    body: str = "Hello, where is my order 1042?",
    *,
    charset: str = "utf-8",
    subject: str = "Order 1042",
    sender: str = "Ana Ruiz <ana@example.com>",
    message_id: str | None = "<m1@mail.example.com>",
    headers: dict | None = None,
    html: str = "",
    attachment: tuple[str, bytes] | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@shop.example"
    message["Subject"] = subject
    message["Date"] = "Mon, 23 Nov 2026 10:00:00 +0800"
    if message_id:
        message["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body, charset=charset)
    if html:
        message.add_alternative(html, subtype="html")
    if attachment:
        message.add_attachment(
            attachment[1], maintype="application", subtype="pdf", filename=attachment[0]
        )
    return message.as_bytes(policy=policy.SMTP)


@pytest.fixture
def inbox():
    inbox = InboxFactory(kind="email", name="Lumen Support")
    config.configure(inbox, address="support@shop.example", ingest_token=TOKEN)
    inbox.save()
    return inbox


def post(client, inbox, raw: bytes, token: str = TOKEN):
    return client.post(
        f"/connectors/email/{inbox.pk}/inbound",
        raw,
        content_type="message/rfc822",
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.mark.parametrize(
    ("charset", "text"),
    [
        ("gb2312", "你好，我的订单 1042 还没到。"),
        ("gbk", "请问订单什么时候发货？"),
        ("big5", "請問我的訂單何時出貨？"),
        ("iso-8859-1", "¿Dónde está mi pedido?"),
        ("iso-8859-15", "Où est ma commande ? Merci €"),
        ("utf-8", "أين طلبي رقم 1042؟"),
    ],
)
def test_any_charset_reads_back_exactly(client, inbox, charset, text):
    response = post(client, inbox, mail(text, charset=charset, subject=text[:10]))
    assert response.status_code == 202
    message = Message.objects.get()
    assert message.text == text and message.subject == text[:10].strip()


def test_an_encoded_name_and_subject_are_decoded(client, inbox):
    raw = mail(sender="=?UTF-8?B?546L5bCP5piO?= <xm@example.cn>", subject="订单问题")
    post(client, inbox, raw)
    message = Message.objects.get()
    assert message.conversation.customer.name == "王小明"
    assert message.subject == "订单问题"


def test_the_same_mail_twice_is_stored_once_even_without_message_id(client, inbox):
    assert post(client, inbox, mail()).status_code == 202
    assert post(client, inbox, mail()).status_code == 200
    no_id = mail("no id here", message_id=None)
    assert post(client, inbox, no_id).status_code == 202
    assert post(client, inbox, no_id).status_code == 200
    assert Message.objects.count() == 2


@pytest.mark.parametrize(
    ("headers", "sender", "reason"),
    [
        ({"Auto-Submitted": "auto-replied"}, "Ana <ana@example.com>", "auto-reply"),
        ({"Precedence": "bulk"}, "News <news@example.com>", "auto-reply"),
        ({"X-Autoreply": "yes"}, "Ana <ana@example.com>", "auto-reply"),
        ({}, "Mail Delivery System <MAILER-DAEMON@mx.example.com>", "bounce"),
        ({"X-Kefu-Message": "12"}, "Lumen <support@shop.example>", "loop"),
    ],
)
def test_mail_nobody_should_answer_is_acknowledged_and_not_stored(
    client, inbox, headers, sender, reason
):
    response = post(client, inbox, mail(headers=headers, sender=sender))
    assert response.status_code == 200 and response.json()["skipped"] == reason
    assert Message.objects.count() == 0


def test_quoted_history_and_signature_are_cut_but_kept(client, inbox):
    body = (
        "Yes, please send a new one.\n\n-- \nAna\n\n"
        "On Mon, 23 Nov 2026 at 09:00, Lumen Support <support@shop.example> wrote:\n"
        "> Shall we send a replacement?\n"
    )
    post(client, inbox, mail(body))
    message = Message.objects.get()
    assert message.text == "Yes, please send a new one."
    assert "Shall we send a replacement?" in message.metadata["email"]["original_text"]


def test_html_and_attachments_arrive_with_the_message(client, inbox, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    raw = mail(
        "See the invoice",
        html="<p>See the <b>invoice</b></p><script>alert(1)</script>",
        attachment=("invoice.pdf", b"%PDF-1.4 test"),
    )
    post(client, inbox, raw)
    message = Message.objects.get()
    assert "<b>invoice</b>" in message.html and "<script" not in message.html
    [attachment] = message.attachments.all()
    assert (attachment.filename, attachment.file.read()) == ("invoice.pdf", b"%PDF-1.4 test")


@pytest.mark.parametrize("token", ["wrong", ""])
def test_a_wrong_ingest_token_is_refused(client, inbox, token):
    assert post(client, inbox, mail(), token=token).status_code == 403
    assert Message.objects.count() == 0


def test_mail_without_a_sender_is_a_400(client, inbox):
    response = post(client, inbox, b"Subject: hi\r\n\r\nbody\r\n")
    assert response.status_code == 400 and "no sender" in response.json()["detail"]


# --- replies through a real SMTP server -----------------------------------------------------------


def test_a_reply_arrives_threaded_as_text_and_html(client, inbox, smtp_server):
    post(client, inbox, mail())
    conversation = Conversation.objects.get()
    reply = actions.reply(
        conversation=conversation, actor=AgentFactory(), text="It ships today.\n\nLumen"
    )

    result = outbound.send(reply)

    [(envelope_from, recipients, raw)] = smtp_server.received
    sent = message_from_bytes(raw, policy=policy.default)
    assert recipients == ["ana@example.com"] and envelope_from == "support@shop.example"
    assert sent["In-Reply-To"] == "<m1@mail.example.com>"
    assert sent["Subject"] == "Re: Order 1042" and sent["X-Kefu-Message"] == str(reply.pk)
    plain = sent.get_body(("plain",)).get_content().replace("\r\n", "\n").strip()
    assert plain == "It ships today.\n\nLumen"
    assert "<p>It ships today.</p>" in sent.get_body(("html",)).get_content()
    assert result.provider_id == sent["Message-ID"]

    # The customer's answer to our mail threads back into the same conversation
    actions.mark_delivery_sent(
        message=reply, provider_id=result.provider_id, status="sent", attempt=1
    )
    Conversation.objects.filter(pk=conversation.pk).update(status="solved")
    answer = mail(
        "Thanks!", message_id="<m2@mail.example.com>", headers={"In-Reply-To": result.provider_id}
    )
    post(client, inbox, answer)
    assert Message.objects.filter(direction="inbound").last().conversation_id == conversation.pk


def test_no_header_can_be_injected_through_the_subject(client, inbox, smtp_server):
    post(client, inbox, mail())
    conversation = Conversation.objects.get()
    Conversation.objects.filter(pk=conversation.pk).update(
        subject="Order\r\nBcc: victim@example.com\r\nX-Evil: 1"
    )
    conversation.refresh_from_db()
    reply = actions.reply(conversation=conversation, actor=AgentFactory(), text="Hi")

    outbound.send(reply)

    [(_, recipients, raw)] = smtp_server.received
    sent = message_from_bytes(raw, policy=policy.default)
    assert recipients == ["ana@example.com"]
    assert sent["Bcc"] is None and sent["X-Evil"] is None
    assert sent["Subject"] == "Re: Order Bcc: victim@example.com X-Evil: 1"


def test_an_unreachable_smtp_server_is_a_transient_failure(client, inbox):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    config.configure(inbox, smtp_host="127.0.0.1", smtp_port=closed_port, smtp_security="none")
    inbox.save()
    post(client, inbox, mail())
    reply = actions.reply(conversation=Conversation.objects.get(), actor=AgentFactory(), text="Hi")
    with pytest.raises(ConnectorError) as failed:
        outbound.send(reply)
    assert failed.value.permanent is False


def test_parse_keeps_references_in_order_and_without_duplicates():
    raw = mail(headers={"References": "<a@x> <b@x>", "In-Reply-To": "<b@x>"})
    parsed = inbound.parse(raw)
    assert parsed.message is not None and parsed.message.references == ["<a@x>", "<b@x>"]
