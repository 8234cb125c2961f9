"""WhatsApp Cloud API: handshake, signed notifications, message types, statuses that never
regress, media through the guarded client, replies and the 24-hour window, against a local HTTP
server answering as the Graph API documents."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from kefu.connectors.base import ConnectorError
from kefu.connectors.whatsapp import config, outbound
from kefu.conversations import actions
from kefu.conversations.models import Conversation, Message
from tests.connectors.fakes import JsonHandler, serving
from tests.factories import AgentFactory, InboxFactory

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[3] / "kefu" / "connectors" / "whatsapp" / "fixtures"
APP_SECRET = "app-secret-7f3a"


def fixture(name: str) -> bytes:
    """A recorded payload with its timestamps moved to the last few minutes (same order and
    spacing), so the 24-hour window is open as it was when they were sent."""
    body = json.loads((FIXTURES / f"{name}.json").read_bytes())
    shift = int(time.time()) - 1763881000

    def move(node):
        if isinstance(node, dict):
            return {
                k: str(int(v) + shift) if k == "timestamp" else move(v) for k, v in node.items()
            }
        if isinstance(node, list):
            return [move(v) for v in node]
        return node

    return json.dumps(move(body), ensure_ascii=False).encode()


def signed(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class GraphApi(JsonHandler):
    calls: list = []
    refuse_with: tuple[int, dict] | None = None

    def do_POST(self):
        body = self._body()
        GraphApi.calls.append((self.path, self.headers.get("Authorization"), body))
        if GraphApi.refuse_with:
            return self._json(*GraphApi.refuse_with)
        contact = {"input": body["to"], "wa_id": body["to"]}
        answer = {"messaging_product": "whatsapp", "contacts": [contact]}
        self._json(200, answer | {"messages": [{"id": "wamid.OUR-LAST-MESSAGE"}]})

    def do_GET(self):
        GraphApi.calls.append((self.path, self.headers.get("Authorization"), None))
        port = self.server.server_address[1]
        if self.path.endswith("/1003383421387256"):
            return self._json(
                200,
                {
                    "url": f"http://127.0.0.1:{port}/media/blob",
                    "mime_type": "image/jpeg",
                    "id": "1003383421387256",
                },
            )
        if self.path == "/media/blob":
            return self._bytes(b"JPEGDATA")
        self._json(404, {"error": {"message": "Unknown path", "code": 100}})


@pytest.fixture
def graph_api(settings):
    GraphApi.calls, GraphApi.refuse_with = [], None
    with serving(GraphApi, settings) as base:
        yield f"{base}/v21.0"


@pytest.fixture
def inbox(graph_api):
    inbox = InboxFactory(kind="whatsapp", name="WhatsApp")
    config.configure(
        inbox,
        phone_number_id="106540352242922",
        api_base=graph_api,
        app_secret=APP_SECRET,
        verify_token="verify-me",
        access_token="EAAG-token",
    )
    inbox.save()
    return inbox


def notify(client, inbox, body: bytes, signature: str | None = "auto"):
    headers = {}
    if signature == "auto":
        headers["X-Hub-Signature-256"] = signed(body)
    elif signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return client.post(
        f"/connectors/whatsapp/{inbox.pk}/webhook",
        body,
        content_type="application/json",
        headers=headers,
    )


def test_the_subscription_handshake_echoes_the_challenge_only_for_our_token(client, inbox):
    url = f"/connectors/whatsapp/{inbox.pk}/webhook"
    ok = client.get(
        url,
        {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"},
    )
    wrong = client.get(
        url, {"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"}
    )
    assert (ok.status_code, ok.content) == (200, b"1158201444")
    assert wrong.status_code == 403


def test_a_signed_text_message_is_stored_once_with_phone_and_whatsapp_identities(client, inbox):
    first = notify(client, inbox, fixture("text"))
    replay = notify(client, inbox, fixture("text"))

    assert first.status_code == replay.status_code == 200
    assert (first.json()["created"], replay.json()["created"]) == (1, 0)
    message = Message.objects.get()
    assert message.text == "مرحبا، أين طلبي رقم 1042؟"
    customer = message.conversation.customer
    assert customer.name == "Sara Ahmed"
    assert sorted(customer.identities.values_list("kind", "value")) == [
        ("phone", "+971501234567"),
        ("whatsapp", "971501234567"),
    ]


@pytest.mark.parametrize(
    "tamper",
    ["one byte", "wrong secret", "missing header", "no prefix"],
)
def test_a_bad_signature_changes_nothing(client, inbox, tamper):
    body = fixture("text")
    if tamper == "one byte":
        response = notify(client, inbox, body.replace(b"1042", b"1043"), signature=signed(body))
    elif tamper == "wrong secret":
        response = notify(client, inbox, body, signature=signed(body, "other"))
    elif tamper == "missing header":
        response = notify(client, inbox, body, signature=None)
    else:
        response = notify(client, inbox, body, signature=signed(body).removeprefix("sha256="))
    assert response.status_code == 403
    assert Message.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"object": "page"}', b'{"object": "whatsapp_business_account", "entry": "x"}'],
)
def test_malformed_notifications_are_a_400(client, inbox, body):
    assert notify(client, inbox, body).status_code == 400
    assert Message.objects.count() == 0


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("location", "[location 25.2048, 55.2708] Home Dubai Marina"),
        ("interactive", "Track my order"),
        ("reaction", "[reaction 👍]"),
        ("contacts", "[contacts] Omar Ali"),
    ],
)
def test_message_types_become_readable_text(client, inbox, name, text):
    notify(client, inbox, fixture(name))
    assert Message.objects.get().text == text


def test_media_is_downloaded_with_the_token_through_the_guarded_client(client, inbox):
    notify(client, inbox, fixture("image"))
    message = Message.objects.get()
    [attachment] = message.attachments.all()
    assert message.text == "The box was crushed"
    assert attachment.file.read() == b"JPEGDATA"
    assert all(auth == "Bearer EAAG-token" for _, auth, _ in GraphApi.calls)


def reply_sent(client, inbox):
    notify(client, inbox, fixture("text"))
    conversation = Conversation.objects.get()
    reply = actions.reply(conversation=conversation, actor=AgentFactory(), text="تم الشحن اليوم")
    result = outbound.send(reply)
    actions.mark_delivery_sent(
        message=reply, provider_id=result.provider_id, status="sent", attempt=1
    )
    return Message.objects.get(pk=reply.pk)


def test_a_reply_is_sent_as_text_to_the_customers_number(client, inbox):
    Message.objects.all().delete()
    reply = reply_sent(client, inbox)
    path, auth, body = GraphApi.calls[-1]
    assert path == "/v21.0/106540352242922/messages" and auth == "Bearer EAAG-token"
    assert body == {"messaging_product": "whatsapp", "to": "971501234567", "type": "text",
                    "text": {"body": "تم الشحن اليوم"}}  # fmt: skip
    assert reply.external_id == "wamid.OUR-LAST-MESSAGE"


def test_statuses_move_forward_and_never_back(client, inbox):
    reply = reply_sent(client, inbox)
    notify(client, inbox, fixture("status_read"))
    notify(client, inbox, fixture("status_delivered"))  # late, older
    notify(client, inbox, fixture("status_failed"))  # after read: ignored
    reply.refresh_from_db()
    assert reply.delivery_status == "read" and "read_at" in reply.metadata


def test_a_failure_report_marks_the_reply_failed_with_a_note(client, inbox):
    reply = reply_sent(client, inbox)
    notify(client, inbox, fixture("status_failed"))
    reply.refresh_from_db()
    assert reply.delivery_status == "failed"
    assert reply.delivery_error == "131047: Re-engagement message"
    note = reply.conversation.messages.filter(direction="note").get()
    assert "131047" in note.text


def test_free_text_outside_the_24_hour_window_is_refused_before_any_call(client, inbox):
    notify(client, inbox, fixture("text"))
    conversation = Conversation.objects.get()
    Conversation.objects.filter(pk=conversation.pk).update(
        last_inbound_at=timezone.now() - timedelta(hours=25)
    )
    conversation.refresh_from_db()
    reply = actions.reply(conversation=conversation, actor=AgentFactory(), text="Hello again")
    GraphApi.calls.clear()

    assert not outbound.can_send_free_text(conversation)
    with pytest.raises(ConnectorError) as refused:
        outbound.send(reply)
    assert refused.value.permanent and "24-hour window" in refused.value.message
    assert GraphApi.calls == []


def test_a_template_may_be_sent_outside_the_window(client, inbox):
    notify(client, inbox, fixture("text"))
    conversation = Conversation.objects.get()
    Conversation.objects.filter(pk=conversation.pk).update(
        last_inbound_at=timezone.now() - timedelta(days=3)
    )
    reply = actions.reply(conversation=conversation, actor=AgentFactory(), text="Order shipped")
    reply.metadata = {"whatsapp_template": {"name": "order_shipped", "language": "ar"}}
    reply.save(update_fields=["metadata"])

    outbound.send(reply)

    body = GraphApi.calls[-1][2]
    assert body["type"] == "template"
    assert body["template"] == {
        "name": "order_shipped",
        "language": {"code": "ar"},
        "components": [],
    }


@pytest.mark.parametrize(("status", "permanent"), [(400, True), (429, False), (503, False)])
def test_graph_api_errors_are_permanent_or_transient(client, inbox, status, permanent):
    notify(client, inbox, fixture("text"))
    reply = actions.reply(conversation=Conversation.objects.get(), actor=AgentFactory(), text="Hi")
    GraphApi.refuse_with = (
        status,
        {"error": {"message": "(#131026) Message undeliverable", "code": 131026}},
    )
    with pytest.raises(ConnectorError) as refused:
        outbound.send(reply)
    assert refused.value.permanent is permanent


def test_email_then_whatsapp_with_matching_phone_is_one_customer(client, inbox):
    from kefu.conversations.inbound import InboundMessage
    from kefu.conversations.pipeline import receive_message

    by_mail = receive_message(
        inbox=InboxFactory(kind="email"),
        message=InboundMessage(
            external_id="mail-1",
            identities=[("email", "sara@example.com"), ("phone", "+971 50 123 4567")],
            text="Where is my order?",
        ),
    )
    notify(client, inbox, fixture("text"))
    on_whatsapp = Message.objects.get(external_id="wamid.HBgMOTcxNTAxMjM0NTY3FQIAEhggQTE=")
    assert on_whatsapp.conversation.customer_id == by_mail.conversation.customer_id
    assert by_mail.conversation.customer.conversations.count() == 2
