"""The inbound pipeline's rules: idempotency, identities, threading, summaries, events."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from kefu.conversations.actions import receive_message, reply, set_status
from kefu.conversations.inbound import InboundAttachment, InboundMessage
from kefu.conversations.models import (
    Attachment,
    Conversation,
    ConversationEvent,
    EventKind,
    Message,
    Status,
)
from kefu.core.errors import InvalidInput
from kefu.core.events import subscribe, unsubscribe
from kefu.customers.models import Customer, Identity
from tests.factories import InboxFactory, StoreFactory

pytestmark = pytest.mark.django_db


def receive(inbox, external_id, identities, text="Where is my order?", **kwargs):
    return receive_message(
        inbox=inbox,
        message=InboundMessage(external_id=external_id, identities=identities, text=text, **kwargs),
    )


# --- idempotency ---------------------------------------------------------------------------


def test_the_same_provider_id_is_stored_once(inbox):
    first = receive(inbox, "m-1", [("email", "ana@example.com")])
    again = receive(inbox, "m-1", [("email", "ana@example.com")], text="changed text")

    assert first.created and not again.created
    assert again.message.pk == first.message.pk
    assert again.conversation.pk == first.conversation.pk
    assert Message.objects.count() == 1
    assert Message.objects.get().text == "Where is my order?"
    assert Conversation.objects.get().unread_count == 1


def test_the_same_provider_id_in_another_inbox_is_another_message(inbox):
    other = InboxFactory(store=inbox.store)
    receive(inbox, "m-1", [("email", "ana@example.com")])
    second = receive(other, "m-1", [("email", "ana@example.com")])

    assert second.created
    assert Message.objects.count() == 2
    assert Customer.objects.count() == 1


# --- identity resolution -------------------------------------------------------------------


def test_email_matches_whatever_its_case(inbox):
    a = receive(inbox, "1", [("email", "Ana.Lopez@Example.COM")])
    b = receive(inbox, "2", [("email", " ana.lopez@example.com ")])

    assert a.conversation.customer_id == b.conversation.customer_id
    assert list(Identity.objects.values_list("kind", "value")) == [
        ("email", "ana.lopez@example.com")
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("+1 415-555-0100", "(415) 555-0100"),
        ("004915123456789", "+49 151 23456789"),
        ("+86 138 0013 8000", "+8613800138000"),
    ],
)
def test_phone_matches_in_any_format(first, second):
    inbox = InboxFactory(store=StoreFactory(country="US"))
    a = receive(inbox, "1", [("phone", first)])
    b = receive(inbox, "2", [("phone", second)])

    assert a.conversation.customer_id == b.conversation.customer_id
    assert Customer.objects.count() == 1
    assert Identity.objects.get().value.startswith("+")


def test_a_new_identity_is_linked_to_the_known_customer(inbox):
    a = receive(inbox, "1", [("email", "ana@example.com")])
    b = receive(inbox, "2", [("email", "ana@example.com"), ("phone", "+34 612 345 678")])

    assert b.conversation.customer_id == a.conversation.customer_id
    customer = Customer.objects.get()
    assert customer.phone == "+34612345678"
    assert customer.identities.count() == 2


def test_identities_of_two_customers_are_never_merged_automatically(inbox):
    ana = receive(inbox, "1", [("email", "ana@example.com")]).conversation.customer_id
    ben = receive(inbox, "2", [("phone", "+14155550100")]).conversation.customer_id

    both = receive(inbox, "3", [("email", "ana@example.com"), ("phone", "+14155550100")])

    assert both.conversation.customer_id == ana
    assert Identity.objects.get(kind="phone").customer_id == ben
    assert Customer.objects.filter(merged_into__isnull=False).count() == 0


@pytest.mark.parametrize(
    "identities",
    [[], [("phone", "not a phone")], [("email", "not-an-email")], [("carrier-pigeon", "x")]],
)
def test_a_message_without_a_usable_identity_is_refused(inbox, identities):
    with pytest.raises(InvalidInput):
        receive(inbox, "1", identities)

    assert Message.objects.count() == 0
    assert Customer.objects.count() == 0


def test_an_empty_message_is_refused(inbox):
    with pytest.raises(InvalidInput):
        receive(inbox, "1", [("email", "a@x.com")], text="   ")
    assert Message.objects.count() == 0


# --- threading -----------------------------------------------------------------------------


def test_a_reference_to_an_earlier_message_threads_into_its_conversation(inbox):
    now = timezone.now()
    old = receive(inbox, "a", [("email", "ana@example.com")], sent_at=now - timedelta(days=30))
    newer = receive(inbox, "b", [("email", "ana@example.com")], sent_at=now - timedelta(hours=1))
    assert newer.conversation.pk != old.conversation.pk  # 30 days apart: outside the window

    answer = receive(inbox, "c", [("email", "ana@example.com")], references=["a"])

    assert answer.conversation.pk == old.conversation.pk


def test_a_thread_key_wins_over_the_window(inbox):
    chat = receive(inbox, "a", [("external", "visitor-1")], thread_key="session-1")
    receive(inbox, "b", [("external", "visitor-1")], thread_key="session-2")

    back = receive(inbox, "c", [("external", "visitor-1")], thread_key="session-1")

    assert back.conversation.pk == chat.conversation.pk


def test_within_the_window_a_message_joins_the_open_conversation(inbox):
    now = timezone.now()
    a = receive(inbox, "a", [("email", "ana@example.com")], sent_at=now - timedelta(hours=70))
    b = receive(inbox, "b", [("email", "ana@example.com")], sent_at=now)

    assert b.conversation.pk == a.conversation.pk
    assert Conversation.objects.get().message_count == 2


def test_outside_the_window_a_message_starts_a_new_conversation(inbox):
    now = timezone.now()
    a = receive(inbox, "a", [("email", "ana@example.com")], sent_at=now - timedelta(hours=73))
    b = receive(inbox, "b", [("email", "ana@example.com")], sent_at=now)

    assert b.conversation.pk != a.conversation.pk
    assert b.conversation_created


def test_the_window_is_per_inbox_when_set(inbox):
    inbox.thread_window_hours = 1
    inbox.save()
    now = timezone.now()
    a = receive(inbox, "a", [("email", "ana@example.com")], sent_at=now - timedelta(hours=2))
    b = receive(inbox, "b", [("email", "ana@example.com")], sent_at=now)
    assert b.conversation.pk != a.conversation.pk


def test_a_solved_conversation_reopens_within_the_window(inbox):
    first = receive(inbox, "a", [("email", "ana@example.com")])
    set_status(conversation=first.conversation, actor=None, status=Status.SOLVED)

    again = receive(inbox, "b", [("email", "ana@example.com")], text="It still has not arrived")

    conversation = Conversation.objects.get(pk=first.conversation.pk)
    assert again.conversation.pk == conversation.pk
    assert conversation.status == Status.OPEN
    assert conversation.solved_at is None
    reopened = ConversationEvent.objects.get(conversation=conversation, kind=EventKind.REOPENED)
    assert reopened.data == {"from": "solved", "to": "open", "by": "customer"}


def test_a_closed_conversation_never_reopens(inbox):
    first = receive(inbox, "a", [("email", "ana@example.com")])
    set_status(conversation=first.conversation, actor=None, status=Status.CLOSED)

    again = receive(inbox, "b", [("email", "ana@example.com")], references=["a"])

    assert again.conversation.pk != first.conversation.pk
    assert Conversation.objects.get(pk=first.conversation.pk).status == Status.CLOSED


@pytest.mark.parametrize("waiting_status", [Status.PENDING, Status.ON_HOLD])
def test_pending_and_on_hold_go_back_to_open(inbox, waiting_status):
    first = receive(inbox, "a", [("email", "ana@example.com")])
    set_status(conversation=first.conversation, actor=None, status=waiting_status)

    receive(inbox, "b", [("email", "ana@example.com")])

    assert Conversation.objects.get().status == Status.OPEN


# --- summaries -----------------------------------------------------------------------------


def test_the_inbox_list_fields_follow_the_messages(inbox, agent):
    now = timezone.now()
    first = receive(inbox, "a", [("email", "ana@example.com")], text="Hi?", sent_at=now)
    conversation = Conversation.objects.get()
    assert (conversation.unread_count, conversation.message_count) == (1, 1)
    assert conversation.waiting_since == now
    assert conversation.last_message_preview == "Hi?"
    assert conversation.language == ""  # too short to tell

    reply(conversation=first.conversation, actor=agent, text="On its way!")
    conversation.refresh_from_db()
    assert conversation.waiting_since is None
    assert conversation.unread_count == 0
    assert conversation.first_response_at is not None
    assert conversation.message_count == 2

    later = now + timedelta(minutes=5)
    receive(
        inbox, "b", [("email", "ana@example.com")], text="¿Dónde está mi pedido?", sent_at=later
    )
    conversation.refresh_from_db()
    assert conversation.waiting_since == later
    assert conversation.unread_count == 1
    assert conversation.last_message_preview == "¿Dónde está mi pedido?"


def test_an_older_message_does_not_replace_the_preview(inbox):
    now = timezone.now()
    receive(inbox, "a", [("email", "ana@example.com")], text="Newest", sent_at=now)
    receive(
        inbox, "b", [("email", "ana@example.com")], text="Older", sent_at=now - timedelta(minutes=9)
    )

    conversation = Conversation.objects.get()
    assert conversation.last_message_preview == "Newest"
    assert conversation.last_message_at == now


def test_language_is_detected(inbox):
    receive(inbox, "a", [("email", "wang@example.cn")], text="你好，我的订单什么时候发货？")
    assert Conversation.objects.get().language == "zh"
    assert Message.objects.get().language == "zh"


def test_html_is_sanitized_and_gives_the_text(inbox):
    html = (
        '<p onclick="steal()">Hello <b>there</b></p>'
        "<script>alert(1)</script><img src=x onerror=alert(2)>"
    )
    receive(inbox, "a", [("email", "a@x.com")], text="", html=html)

    message = Message.objects.get()
    assert "script" not in message.html and "onerror" not in message.html
    assert "onclick" not in message.html
    assert "<b>there</b>" in message.html
    assert message.text == "Hello there"


def test_an_attachment_over_the_inbox_limit_is_recorded_as_refused(inbox):
    inbox.config = {"max_attachment_bytes": 10}
    inbox.save()
    receive_message(
        inbox=inbox,
        message=InboundMessage(
            external_id="a",
            identities=[("email", "a@x.com")],
            text="photos",
            attachments=[
                InboundAttachment("small.txt", "text/plain", b"12345"),
                InboundAttachment("../../etc/big.jpg", "image/jpeg", b"x" * 11),
            ],
        ),
    )
    small, big = Attachment.objects.order_by("pk")
    assert (small.refused_reason, small.size, bool(small.file)) == ("", 5, True)
    assert big.refused_reason.startswith("larger than")
    assert big.filename == "big.jpg"
    assert not big.file


# --- events --------------------------------------------------------------------------------


def test_events_are_emitted_after_commit_only(inbox, django_capture_on_commit_callbacks):
    seen = []

    def handler(event):
        seen.append(event.name)

    subscribe("*")(handler)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            receive(inbox, "a", [("email", "a@x.com")])
        assert seen == ["customer.created", "conversation.created", "message.received"]

        seen.clear()
        with django_capture_on_commit_callbacks(execute=True):
            try:
                with transaction.atomic():
                    receive(inbox, "b", [("email", "b@x.com")])
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
        assert seen == []
        assert Message.objects.filter(external_id="b").count() == 0
    finally:
        unsubscribe("*", handler)


def test_a_duplicate_emits_nothing(inbox, django_capture_on_commit_callbacks):
    receive(inbox, "a", [("email", "a@x.com")])
    with django_capture_on_commit_callbacks() as callbacks:
        receive(inbox, "a", [("email", "a@x.com")])
    assert callbacks == []


# --- query counts on the hot path --------------------------------------------------------------


def test_query_count_known_customer_open_conversation(inbox, django_assert_num_queries):
    receive(inbox, "a", [("email", "a@x.com")])
    inbox.refresh_from_db()
    inbox.store  # noqa: B018  (loaded once per request by the API's scoped inbox lookup)
    # duplicate check, identities; savepoint, conversation lock, summary, message, event,
    # search's savepoint + message entry + customer entry + release, release; on SQLite the
    # entry's terms go to FTS5 by a statement of their own and the customer's entry is read
    # first (no upsert: see SqliteEngine.write_customers)
    with django_assert_num_queries(12 if connection.vendor == "postgresql" else 14):
        receive(inbox, "b", [("email", "a@x.com")])


def test_query_count_new_customer(inbox, django_assert_num_queries):
    inbox.store  # noqa: B018
    # duplicate check, identities; savepoint, customer, savepoint + identity + release,
    # conversation candidates, conversation, message, events, search's savepoint + message
    # entry + customer entry + release, release; on SQLite the FTS5 inserts of both entries
    # and the read of the customer's
    with django_assert_num_queries(16 if connection.vendor == "postgresql" else 19):
        receive(inbox, "a", [("email", "a@x.com")])


def test_query_count_duplicate(inbox, django_assert_num_queries):
    receive(inbox, "a", [("email", "a@x.com")])
    inbox.store  # noqa: B018
    with django_assert_num_queries(2):
        receive(inbox, "a", [("email", "a@x.com")])


# --- concurrency (PostgreSQL) ---------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_first_messages_of_one_new_customer_at_once_make_one_customer():
    inbox = InboxFactory()
    barrier = threading.Barrier(2)
    errors = []

    def send(external_id):
        try:
            barrier.wait()
            receive(inbox, external_id, [("email", "race@example.com")])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(f"m{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert Customer.objects.count() == 1
    assert Message.objects.count() == 2
    assert Identity.objects.count() == 1
