"""The widget's HTTP side (script, uploads, downloads) and replies to visitors who left, by
email through a real SMTP server."""

from __future__ import annotations

import hashlib
import socket

import pytest
from aiosmtpd.controller import Controller
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile

from kefu.accounts.ratelimit import forget_all
from kefu.connectors.chat import config, inbound, visitors
from kefu.connectors.email import config as email_config
from kefu.conversations import actions
from kefu.conversations.models import Attachment, DeliveryStatus, InboxKind, Message
from kefu.conversations.tasks import deliver_message
from tests.factories import AgentFactory, InboxFactory

SHOP = "https://shop.example"


@pytest.fixture(autouse=True)
def _fresh_limits(db):
    forget_all()
    cache.clear()
    yield
    forget_all()


@pytest.fixture
def chat_inbox(db):
    inbox = InboxFactory(kind=InboxKind.CHAT, name="Tea shop")
    config.configure(inbox, allowed_origins=[SHOP], max_attachment_bytes=1024)
    inbox.save()
    return inbox


def key_of(inbox) -> str:
    return config.settings_of(inbox).widget_key


def visitor_token(inbox) -> tuple[str, str]:
    visitor = visitors.new_visitor()
    return visitor, visitors.issue_token(inbox.pk, visitor)


def write(inbox, visitor, text="Hello", email=""):
    client_id = "client-" + hashlib.sha256(text.encode()).hexdigest()[:16]
    frame = {"type": "message", "text": text, "client_id": client_id, "email": email}
    message = inbound.parse_frame(visitor, frame)
    settings = config.settings_of(inbox)
    return inbound.store(inbox=inbox, settings=settings, message=message, address="192.0.2.1")


def test_the_script_is_served_by_kefu_with_an_etag(client):
    response = client.get("/chat/widget.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert b"/ws/chat/" in response.content
    again = client.get("/chat/widget.js", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304


def test_the_demo_page_carries_the_widget_and_an_unknown_key_is_a_404(client, chat_inbox):
    page = client.get(f"/connectors/chat/{key_of(chat_inbox)}/demo")
    assert page.status_code == 200
    assert f'data-key="{key_of(chat_inbox)}"'.encode() in page.content
    assert client.get("/connectors/chat/wk_unknown/demo").status_code == 404


def upload(client, inbox, token, content=b"%PDF-1.4 receipt", origin=SHOP, name="receipt.pdf"):
    return client.post(
        f"/connectors/chat/{key_of(inbox)}/upload",
        {
            "file": SimpleUploadedFile(name, content, content_type="application/pdf"),
            "client_id": f"upload-{name.replace('.', '-')}",
        },
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_ORIGIN=origin,
    )


def test_an_upload_becomes_a_message_with_cors_for_the_shop(client, chat_inbox, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    preflight = client.options(f"/connectors/chat/{key_of(chat_inbox)}/upload", HTTP_ORIGIN=SHOP)
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == SHOP
    _, token = visitor_token(chat_inbox)
    response = upload(client, chat_inbox, token)
    assert response.status_code == 201, response.content
    assert response["Access-Control-Allow-Origin"] == SHOP
    message = Message.objects.get(pk=response.json()["id"])
    [attachment] = message.attachments.all()
    assert attachment.filename == "receipt.pdf" and attachment.file.read() == b"%PDF-1.4 receipt"


def test_an_oversized_upload_is_kept_as_refused_not_dropped(client, chat_inbox, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    _, token = visitor_token(chat_inbox)
    response = upload(client, chat_inbox, token, content=b"x" * 5000, name="big.pdf")
    assert response.status_code == 201
    assert response.json()["refused"]
    [attachment] = Attachment.objects.all()
    assert attachment.refused_reason and attachment.size == 5000 and not attachment.file


def test_uploads_need_the_visitor_token_and_an_allowed_origin(client, chat_inbox):
    _, token = visitor_token(chat_inbox)
    assert upload(client, chat_inbox, "forged").status_code == 403
    assert upload(client, chat_inbox, token, origin="https://evil.example").status_code == 403
    assert Message.objects.count() == 0


def test_a_file_is_readable_only_with_its_own_visitor_token(client, chat_inbox, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    _, token = visitor_token(chat_inbox)
    upload(client, chat_inbox, token)
    attachment = Attachment.objects.get()
    url = f"/connectors/chat/{key_of(chat_inbox)}/a/{attachment.pk}"
    own = client.get(url, {"t": token})
    assert own.status_code == 200
    assert b"".join(own.streaming_content) == b"%PDF-1.4 receipt"
    assert own["Content-Disposition"].startswith("attachment")
    _, stranger = visitor_token(chat_inbox)
    assert client.get(url, {"t": stranger}).status_code == 404
    assert client.get(url).status_code == 404


# --- the visitor left: the reply goes out by email too ------------------------------------------


class Recorder:
    def __init__(self):
        self.received: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def mailbox(db, chat_inbox):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    email_inbox = InboxFactory(kind=InboxKind.EMAIL, name="Tea shop mail")
    email_config.configure(
        email_inbox,
        address="help@tea.example",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
    )
    email_inbox.save()
    config.configure(chat_inbox, offline_email_inbox_id=email_inbox.pk)
    chat_inbox.save()
    yield recorder
    controller.stop()


def test_a_visitor_who_left_with_an_email_gets_the_reply_by_mail(chat_inbox, mailbox):
    visitor, _ = visitor_token(chat_inbox)
    result = write(chat_inbox, visitor, "Do you ship to Lyon?", email="li@example.com")
    reply = actions.reply(
        conversation=result.conversation, actor=AgentFactory(), text="Yes, 5 days."
    )
    assert deliver_message.call(reply.pk) == "sent"
    [(recipients, raw)] = mailbox.received
    assert recipients == ["li@example.com"]
    assert b"Yes, 5 days." in raw and b"X-Kefu-Message" in raw
    assert Message.objects.get(pk=reply.pk).delivery_status == DeliveryStatus.SENT


def test_a_visitor_still_there_gets_no_mail(chat_inbox, mailbox):
    visitor, _ = visitor_token(chat_inbox)
    result = write(chat_inbox, visitor, "Still here", email="li@example.com")
    visitors.mark_online(visitor)
    reply = actions.reply(conversation=result.conversation, actor=AgentFactory(), text="Hi!")
    assert deliver_message.call(reply.pk) == "sent"
    assert mailbox.received == []
