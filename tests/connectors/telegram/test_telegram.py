"""Telegram: the webhook (secret token, parsing, replays, files) and replies through a local
HTTP server that answers as the Bot API documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kefu.connectors.base import ConnectorError
from kefu.connectors.telegram import config, outbound
from kefu.conversations import actions
from kefu.conversations.models import Conversation, Message
from kefu.customers.models import Identity
from tests.connectors.fakes import JsonHandler, serving
from tests.factories import AgentFactory, InboxFactory

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[3] / "kefu" / "connectors" / "telegram" / "fixtures"
SECRET = "s3cret-token_ABC"


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


class BotApi(JsonHandler):
    """Answers sendMessage, getFile and file downloads as api.telegram.org does."""

    calls: list = []
    refuse_with: tuple[int, dict] | None = None

    def do_POST(self):
        body = self._body()
        BotApi.calls.append((self.path, body))
        if BotApi.refuse_with:
            status, answer = BotApi.refuse_with
            return self._json(status, answer)
        self._json(
            200, {"ok": True, "result": {"message_id": 2301, "chat": {"id": body["chat_id"]}}}
        )

    def do_GET(self):
        BotApi.calls.append((self.path, None))
        if "/getFile" in self.path and "voice" in self.path:
            return self._json(
                400, {"ok": False, "error_code": 400, "description": "Bad Request: file is too big"}
            )
        if "/getFile" in self.path:
            return self._json(
                200, {"ok": True, "result": {"file_id": "x", "file_path": "photos/file_7.jpg"}}
            )
        if self.path.endswith("/photos/file_7.jpg"):
            return self._bytes(b"JPEGBYTES")
        self._json(404, {"ok": False, "error_code": 404, "description": "Not Found"})


@pytest.fixture
def bot_api(settings):
    BotApi.calls, BotApi.refuse_with = [], None
    with serving(BotApi, settings) as base:
        yield base


@pytest.fixture
def inbox(bot_api):
    inbox = InboxFactory(kind="telegram", name="Telegram bot")
    config.configure(inbox, bot_token="123456:ABC-DEF", webhook_secret=SECRET, api_base=bot_api)
    inbox.save()
    return inbox


def post(client, inbox, body: bytes, secret: str | None = SECRET):
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    return client.post(
        f"/connectors/telegram/{inbox.pk}/webhook",
        body,
        content_type="application/json",
        headers=headers,
    )


def test_credentials_are_encrypted_at_rest(inbox):
    inbox.refresh_from_db()
    stored = json.dumps(inbox.config)
    assert "123456:ABC-DEF" not in stored and SECRET not in stored
    assert config.settings_of(inbox).bot_token == "123456:ABC-DEF"


def test_a_text_message_lands_in_the_pipeline_once_whatever_the_replays(client, inbox):
    first = post(client, inbox, fixture("text"))
    again = post(client, inbox, fixture("text"))

    assert first.status_code == again.status_code == 200
    assert (first.json()["created"], again.json()["created"]) == (True, False)
    message = Message.objects.get()
    assert message.text == "你好，我的订单 #1042 什么时候发货？"
    assert message.external_id == "update:915372011"
    assert message.conversation.customer.name == "Li Wei"
    assert Identity.objects.filter(kind="telegram", value="5512093347").count() == 1


@pytest.mark.parametrize(
    ("change", "secret"),
    [
        ("none", "wrong-secret"),
        ("none", None),
        ("none", ""),
        ("one byte", "s3cret-token_ABD"),
    ],
)
def test_a_wrong_or_missing_secret_is_refused_and_stores_nothing(client, inbox, change, secret):
    response = post(client, inbox, fixture("text"), secret=secret)
    assert response.status_code == 403
    assert Message.objects.count() == 0


def test_an_inbox_without_a_secret_accepts_nothing(client, inbox):
    inbox.config = {}
    inbox.save()
    assert post(client, inbox, fixture("text"), secret="").status_code == 403
    assert Message.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"message": {}}', b'{"update_id": 1, "message": {"chat": {}}}'],
)
def test_malformed_bodies_are_a_400_and_store_nothing(client, inbox, body):
    response = post(client, inbox, body)
    assert response.status_code == 400 and "not a Telegram update" in response.json()["detail"]
    assert Message.objects.count() == 0


def test_group_messages_are_acknowledged_and_ignored(client, inbox):
    response = post(client, inbox, fixture("group"))
    assert response.status_code == 200 and response.json()["ignored"] is True
    assert Message.objects.count() == 0


def test_an_edit_changes_the_message_and_keeps_what_it_said(client, inbox):
    post(client, inbox, fixture("text"))
    assert post(client, inbox, fixture("edited")).json()["edited"]
    [message] = Message.objects.all()
    assert "#1043" in message.text
    assert "#1042" in message.metadata["edits"][0]["text"]
    post(client, inbox, fixture("edited"))  # Telegram retries: nothing more changes
    assert len(Message.objects.get().metadata["edits"]) == 1


def test_an_edit_of_a_message_never_received_is_stored_as_a_message(client, inbox):
    post(client, inbox, fixture("edited"))
    [message] = Message.objects.all()
    assert message.metadata["telegram"]["edited"] is True and "#1043" in message.text


def test_a_photo_is_downloaded_through_the_bot_api(client, inbox):
    post(client, inbox, fixture("photo"))
    message = Message.objects.get()
    [attachment] = message.attachments.all()
    assert message.text == "The box arrived crushed"
    assert attachment.file.read() == b"JPEGBYTES" and not attachment.refused_reason
    asked = [path for path, _ in BotApi.calls if "getFile" in path]
    assert asked == ["/bot123456:ABC-DEF/getFile?file_id=AgACAgIAAxkBAAIBsmVlarge"]


def test_a_file_that_cannot_be_fetched_is_recorded_as_refused(client, inbox):
    post(client, inbox, fixture("voice"))  # the fake API refuses this file
    [attachment] = Message.objects.get().attachments.all()
    assert attachment.filename == "voice.ogg" and not attachment.file
    assert attachment.refused_reason == "Telegram getFile failed (HTTP 400)"


def test_a_reply_goes_out_with_sendmessage_and_the_customers_answer_threads_to_it(client, inbox):
    post(client, inbox, fixture("text"))
    conversation = Conversation.objects.get()
    reply = actions.reply(conversation=conversation, actor=AgentFactory(), text="明天发货")

    result = outbound.send(reply)
    actions.mark_delivery_sent(
        message=reply, provider_id=result.provider_id, status="sent", attempt=1
    )

    assert BotApi.calls[-1] == (
        "/bot123456:ABC-DEF/sendMessage",
        {"chat_id": 5512093347, "text": "明天发货"},
    )
    assert result.provider_id == "sent:5512093347:2301"
    Conversation.objects.filter(pk=conversation.pk).update(status="solved")
    post(client, inbox, fixture("document"))  # replies to our message 2301
    assert Message.objects.filter(direction="inbound").last().conversation_id == conversation.pk


@pytest.mark.parametrize(
    ("status", "answer", "permanent"),
    [
        (
            403,
            {
                "ok": False,
                "error_code": 403,
                "description": "Forbidden: bot was blocked by the user",
            },
            True,
        ),
        (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}, True),
        (
            429,
            {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 5"},
            False,
        ),
        (502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}, False),
    ],
)
def test_provider_refusals_are_permanent_or_transient(client, inbox, status, answer, permanent):
    post(client, inbox, fixture("text"))
    reply = actions.reply(
        conversation=Conversation.objects.get(), actor=AgentFactory(), text="Hello"
    )
    BotApi.refuse_with = (status, answer)
    with pytest.raises(ConnectorError) as refused:
        outbound.send(reply)
    assert refused.value.permanent is permanent
    assert answer["description"] in refused.value.message


def test_a_telegram_customer_who_also_emailed_is_one_customer_when_linked(client, inbox):
    from kefu.conversations.inbound import InboundMessage
    from kefu.conversations.pipeline import receive_message

    post(client, inbox, fixture("text"))
    by_mail = receive_message(
        inbox=InboxFactory(kind="email"),
        message=InboundMessage(
            external_id="mail-1",
            identities=[("email", "li.wei@example.com"), ("telegram", "5512093347")],
            text="Same question by email",
        ),
    )
    telegram_customer = Message.objects.get(external_id="update:915372011").conversation.customer
    assert by_mail.conversation.customer_id == telegram_customer.pk


def test_the_bot_token_never_reaches_the_logs(client, inbox, caplog):
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    with caplog.at_level(logging.INFO):
        post(client, inbox, fixture("photo"))
    assert "ABC-DEF" not in caplog.text
