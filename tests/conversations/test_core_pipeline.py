"""The inbound pipeline (``receive_message``), rule by rule.

Each test states the situation (given), the delivery (when) and everything that must and must not
have changed (then): rows, denormalized fields, timeline events and domain events.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from kefu.conversations import actions, batch, pipeline
from kefu.conversations.inbound import InboundAttachment, InboundMessage
from kefu.conversations.models import (
    Attachment,
    AuthorKind,
    Conversation,
    ConversationEvent,
    DeliveryStatus,
    Direction,
    EventKind,
    Message,
    Status,
)
from kefu.core.errors import InvalidInput
from kefu.core.events import subscribe, unsubscribe
from kefu.customers.models import Customer, Identity
from tests.factories import CustomerFactory, IdentityFactory, InboxFactory, StoreFactory

pytestmark = pytest.mark.django_db

ANA = [("email", "ana@example.com")]


# Every rule holds on both ways a message is stored: the single path (``receive_message`` alone)
# and the bulk path (batches, and single messages combined under load; kefu.conversations.batch).
_way = {"bulk": False}


@pytest.fixture(autouse=True, params=["single", "bulk"])
def way(request):
    _way["bulk"] = request.param == "bulk"
    yield request.param
    _way["bulk"] = False


def receive(inbox, external_id, identities=ANA, text="Where is my order?", **kwargs):
    inbound = InboundMessage(external_id=external_id, identities=identities, text=text, **kwargs)
    if _way["bulk"]:
        return _through_bulk(inbox, inbound)
    return actions.receive_message(inbox=inbox, message=inbound)


def _through_bulk(inbox, inbound):
    """One message through the bulk path, as the Combiner stores a group of them."""
    prepared = pipeline.prepare(inbox, inbound)
    if not prepared.identities:  # never combined: the single path refuses it
        return pipeline.receive_prepared(inbox, prepared)
    item = batch._Item(0, inbox, prepared, prepared.inbound.sent_at or timezone.now())
    (result,) = batch._receive_items([item], [None])
    if result["status"] == "duplicate":
        return pipeline._existing(inbox, prepared.inbound.external_id)
    assert result["status"] == "created", result
    return pipeline.ReceiveResult(
        message=item.message,
        conversation=item.conversation,
        created=True,
        conversation_created=item.conversation_created,
    )


@pytest.fixture
def single_path_only(way):
    if way == "bulk":
        pytest.skip("about the single path only")


def ago(**delta):
    return timezone.now() - timedelta(**delta)


def kinds(conversation):
    return list(
        ConversationEvent.objects.filter(conversation=conversation)
        .order_by("pk")
        .values_list("kind", flat=True)
    )


def counts():
    return (
        Customer.objects.count(),
        Identity.objects.count(),
        Conversation.objects.count(),
        Message.objects.count(),
        ConversationEvent.objects.count(),
    )


@pytest.fixture
def events():
    """Every domain event dispatched (after commit) while the test runs, by name."""
    seen: list = []

    def handler(event):
        seen.append(event)

    subscribe("*")(handler)
    yield seen
    unsubscribe("*", handler)


# --- a first message -----------------------------------------------------------------------


def test_a_first_message_creates_customer_identity_conversation_message_and_events(inbox):
    sent = ago(minutes=3)

    result = receive(
        inbox, "m-1", [("email", "Ana@Example.com")], customer_name="Ana López", sent_at=sent,
        subject="Order 1042",
    )  # fmt: skip

    assert (result.created, result.conversation_created) == (True, True)
    customer = Customer.objects.get()
    assert (customer.name, customer.email, customer.phone) == ("Ana López", "ana@example.com", "")
    assert list(customer.identities.values_list("kind", "value")) == [("email", "ana@example.com")]
    conversation = Conversation.objects.get()
    assert conversation.pk == result.conversation.pk
    assert (conversation.inbox_id, conversation.store_id, conversation.customer_id) == (
        inbox.pk,
        inbox.store_id,
        customer.pk,
    )
    assert conversation.status == Status.NEW
    assert conversation.subject == "Order 1042"
    assert conversation.last_message_at == sent
    assert conversation.last_inbound_at == sent
    assert conversation.waiting_since == sent
    assert conversation.last_message_preview == "Where is my order?"
    assert (conversation.unread_count, conversation.message_count) == (1, 1)
    assert conversation.first_response_at is None
    assert conversation.assignee_id is None
    message = Message.objects.get()
    assert (message.direction, message.author_kind, message.delivery_status) == (
        Direction.INBOUND,
        AuthorKind.CUSTOMER,
        DeliveryStatus.RECEIVED,
    )
    assert (message.inbox_id, message.external_id, message.sent_at) == (inbox.pk, "m-1", sent)
    assert kinds(conversation) == [EventKind.CREATED, EventKind.MESSAGE_ADDED]
    assert ConversationEvent.objects.get(kind=EventKind.MESSAGE_ADDED).message_id == message.pk


def test_without_a_subject_the_conversation_is_named_after_the_text(inbox):
    result = receive(inbox, "m-1", text="  My parcel\n never   arrived  ")

    assert result.conversation.subject == "My parcel never arrived"
    assert result.conversation.last_message_preview == "My parcel never arrived"


def test_without_sent_at_the_message_is_dated_now(inbox):
    before = timezone.now()
    result = receive(inbox, "m-1")
    assert before <= Message.objects.get().sent_at <= timezone.now()
    assert result.conversation.last_message_at == Message.objects.get().sent_at


# --- idempotency ---------------------------------------------------------------------------


def test_a_retried_delivery_is_stored_once_and_changes_nothing(inbox, events):
    first = receive(inbox, "m-1")
    before = counts()
    conversation_before = Conversation.objects.values().get()
    events.clear()

    again = receive(inbox, "m-1", text="a different body", identities=[("email", "x@y.com")])

    assert (again.created, again.conversation_created) == (False, False)
    assert (again.message.pk, again.conversation.pk) == (first.message.pk, first.conversation.pk)
    assert counts() == before
    assert Conversation.objects.values().get() == conversation_before
    assert Message.objects.get().text == "Where is my order?"
    assert not Identity.objects.filter(value="x@y.com").exists()
    assert events == []


def test_the_external_id_is_compared_without_surrounding_spaces(inbox):
    first = receive(inbox, "m-1")
    again = receive(inbox, "  m-1  ")
    assert not again.created
    assert again.message.pk == first.message.pk


def test_the_same_external_id_in_another_inbox_is_another_message(inbox):
    other = InboxFactory(store=inbox.store)
    first = receive(inbox, "m-1")

    second = receive(other, "m-1")

    assert second.created and second.conversation_created
    assert second.message.pk != first.message.pk
    assert second.conversation.inbox_id == other.pk
    assert Message.objects.count() == 2
    assert Customer.objects.count() == 1


def test_messages_without_an_external_id_are_never_duplicates(inbox):
    receive(inbox, None)
    receive(inbox, None)
    assert Message.objects.count() == 2
    assert Conversation.objects.get().message_count == 2


def test_a_duplicate_of_a_message_moved_by_a_merge_answers_with_its_new_conversation(inbox):
    a = receive(inbox, "a").conversation
    b = Conversation.objects.create(
        inbox=inbox, customer=a.customer, last_message_at=ago(minutes=1)
    )
    actions.merge_conversations(source=a, target=b, actor=None)

    again = receive(inbox, "a")

    assert not again.created
    assert again.conversation.pk == b.pk
    assert Message.objects.count() == 1


@pytest.mark.parametrize("external_id", ["", "   ", "x" * 256])
def test_an_unusable_external_id_is_refused(inbox, external_id):
    with pytest.raises(InvalidInput) as refused:
        receive(inbox, external_id)
    assert refused.value.field == "external_id"
    assert counts() == (0, 0, 0, 0, 0)


# --- identity resolution -------------------------------------------------------------------


def test_email_is_matched_whatever_its_case_and_spaces(inbox):
    a = receive(inbox, "1", [("email", "Ana.Lopez@Example.COM")])
    b = receive(inbox, "2", [("email", "  ana.lopez@example.com ")])

    assert a.conversation.customer_id == b.conversation.customer_id
    assert list(Identity.objects.values_list("kind", "value")) == [
        ("email", "ana.lopez@example.com")
    ]


@pytest.mark.parametrize(
    ("country", "first", "second", "e164"),
    [
        ("US", "+1 415-555-0100", "(415) 555-0100", "+14155550100"),
        ("US", "004915123456789", "+49 151 23456789", "+4915123456789"),
        ("DE", "0151 23456789", "+49 (0)151 2345 6789", "+4915123456789"),
        ("CN", "138 0013 8000", "+86 138-0013-8000", "+8613800138000"),
    ],
)
def test_a_phone_is_matched_in_any_format(country, first, second, e164):
    inbox = InboxFactory(store=StoreFactory(country=country))

    a = receive(inbox, "1", [("phone", first)])
    b = receive(inbox, "2", [("phone", second)])

    assert a.conversation.customer_id == b.conversation.customer_id
    assert a.conversation.pk == b.conversation.pk
    assert list(Identity.objects.values_list("kind", "value")) == [("phone", e164)]
    assert Customer.objects.get().phone == e164


def test_an_inbox_without_a_store_reads_local_numbers_in_the_default_region(settings):
    settings.KEFU_DEFAULT_PHONE_REGION = "US"
    inbox = InboxFactory(store=None)
    receive(inbox, "1", [("phone", "(415) 555-0100")])
    assert Identity.objects.get().value == "+14155550100"


def test_a_known_identity_brings_the_new_ones_to_the_same_customer(inbox):
    first = receive(inbox, "1", [("email", "ana@example.com")])

    second = receive(inbox, "2", [("email", "ana@example.com"), ("phone", "+1 415 555 0100")])

    assert second.conversation.customer_id == first.conversation.customer_id
    assert Customer.objects.count() == 1
    assert set(Identity.objects.values_list("kind", "value", "customer_id")) == {
        ("email", "ana@example.com", first.conversation.customer_id),
        ("phone", "+14155550100", first.conversation.customer_id),
    }
    assert Customer.objects.get().phone == "+14155550100"


def test_identities_owned_by_two_customers_are_not_merged_automatically(inbox):
    ana = IdentityFactory(kind="email", value="ana@example.com").customer
    bob = IdentityFactory(kind="phone", value="+14155550100").customer

    result = receive(inbox, "1", [("email", "ana@example.com"), ("phone", "(415) 555-0100")])

    assert result.conversation.customer_id in (ana.pk, bob.pk)
    assert Customer.objects.count() == 2
    assert Customer.objects.filter(merged_into__isnull=False).count() == 0
    assert Identity.objects.get(value="ana@example.com").customer_id == ana.pk
    assert Identity.objects.get(value="+14155550100").customer_id == bob.pk


def test_the_first_identity_of_the_message_decides_between_two_customers(inbox):
    ana = IdentityFactory(kind="email", value="ana@example.com").customer
    bob = IdentityFactory(kind="phone", value="+14155550100").customer

    by_email = receive(inbox, "1", [("email", "ana@example.com"), ("phone", "+14155550100")])
    by_phone = receive(inbox, "2", [("phone", "+14155550100"), ("email", "ana@example.com")])

    assert by_email.conversation.customer_id == ana.pk
    assert by_phone.conversation.customer_id == bob.pk


def test_an_identity_of_a_merged_customer_leads_to_the_customer_it_was_merged_into(inbox):
    old = IdentityFactory(kind="email", value="old@example.com").customer
    live = CustomerFactory()
    old.merged_into = live
    old.save()

    result = receive(inbox, "1", [("email", "old@example.com"), ("phone", "+14155550100")])

    assert result.conversation.customer_id == live.pk
    assert Identity.objects.get(kind="phone").customer_id == live.pk


@pytest.mark.parametrize(
    "identities",
    [
        [],
        [("email", "not an email")],
        [("email", "   ")],
        [("phone", "12")],
        [("phone", "call me maybe")],
        [("carrier_pigeon", "coo")],
        [("email", ("a" * 250) + "@example.com")],
        [("external", "x" * 255)],
    ],
)
def test_a_message_without_a_usable_identity_is_refused_and_stores_nothing(inbox, identities):
    with pytest.raises(InvalidInput):
        receive(inbox, "1", identities)
    assert counts() == (0, 0, 0, 0, 0)


def test_a_bad_identity_next_to_a_good_one_still_refuses_the_message(inbox):
    with pytest.raises(InvalidInput) as refused:
        receive(inbox, "1", [("email", "ana@example.com"), ("phone", "12")])
    assert refused.value.field == "phone"
    assert counts() == (0, 0, 0, 0, 0)


def test_an_empty_message_is_refused(inbox):
    with pytest.raises(InvalidInput) as refused:
        receive(inbox, "1", text="  \n ")
    assert refused.value.field == "text"
    assert counts() == (0, 0, 0, 0, 0)


def test_a_message_with_only_an_attachment_is_accepted(inbox):
    result = receive(
        inbox, "1", text="", attachments=[InboundAttachment("photo.jpg", "image/jpeg", b"x")]
    )
    assert result.created
    assert Attachment.objects.get().message_id == result.message.pk


def test_an_oversized_text_is_refused(inbox):
    from kefu.conversations.pipeline import MAX_TEXT_CHARS

    with pytest.raises(InvalidInput):
        receive(inbox, "1", text="a" * (MAX_TEXT_CHARS + 1))
    assert counts() == (0, 0, 0, 0, 0)


# --- threading -----------------------------------------------------------------------------


def test_within_the_window_a_message_joins_the_customers_conversation(inbox, settings):
    settings.KEFU_THREAD_WINDOW_HOURS = 72
    first = receive(inbox, "1", sent_at=ago(hours=71))

    second = receive(inbox, "2")

    assert (second.created, second.conversation_created) == (True, False)
    assert second.conversation.pk == first.conversation.pk
    assert Conversation.objects.count() == 1
    assert kinds(first.conversation) == [
        EventKind.CREATED,
        EventKind.MESSAGE_ADDED,
        EventKind.MESSAGE_ADDED,
    ]


def test_outside_the_window_a_message_starts_a_new_conversation(inbox, settings):
    settings.KEFU_THREAD_WINDOW_HOURS = 72
    first = receive(inbox, "1", sent_at=ago(hours=73))

    second = receive(inbox, "2")

    assert second.conversation_created
    assert second.conversation.pk != first.conversation.pk
    old = Conversation.objects.get(pk=first.conversation.pk)
    assert (old.message_count, old.unread_count, old.status) == (1, 1, Status.NEW)


def test_an_inbox_can_set_its_own_window(settings):
    settings.KEFU_THREAD_WINDOW_HOURS = 72
    inbox = InboxFactory(thread_window_hours=1)
    receive(inbox, "1", sent_at=ago(hours=2))

    assert receive(inbox, "2").conversation_created


def test_a_window_of_zero_hours_makes_every_message_a_new_conversation(settings):
    inbox = InboxFactory(thread_window_hours=0)
    receive(inbox, "1", sent_at=ago(minutes=1))
    assert receive(inbox, "2").conversation_created


def test_the_window_never_crosses_inboxes_or_customers(inbox):
    other_inbox = InboxFactory(store=inbox.store)
    first = receive(inbox, "1")

    elsewhere = receive(other_inbox, "2")
    someone_else = receive(inbox, "3", [("email", "bob@example.com")])

    assert elsewhere.conversation_created and someone_else.conversation_created
    assert Conversation.objects.count() == 3
    assert Conversation.objects.get(pk=first.conversation.pk).message_count == 1


def test_the_newest_open_conversation_in_the_window_wins(inbox):
    first = receive(inbox, "1", sent_at=ago(hours=5))
    newer = Conversation.objects.create(
        inbox=inbox, customer=first.conversation.customer, last_message_at=ago(hours=1)
    )

    assert receive(inbox, "2").conversation.pk == newer.pk


def test_a_reference_to_an_earlier_message_wins_over_the_window(inbox, settings):
    settings.KEFU_THREAD_WINDOW_HOURS = 72
    old = receive(inbox, "old", sent_at=ago(days=10)).conversation
    recent = receive(inbox, "recent", sent_at=ago(hours=1)).conversation
    assert old.pk != recent.pk

    answer = receive(inbox, "answer", references=["unknown@mail", "old"])

    assert answer.conversation.pk == old.pk
    assert not answer.conversation_created
    assert Conversation.objects.get(pk=recent.pk).message_count == 1
    assert Conversation.objects.get(pk=old.pk).message_count == 2


def test_a_reference_to_our_own_reply_threads_into_its_conversation(inbox, agent):
    conversation = receive(inbox, "1", sent_at=ago(days=10)).conversation
    sent = actions.reply(conversation=conversation, actor=agent, text="Shipped today.")
    actions.mark_delivery_sent(message=sent, provider_id="our-reply@kefu", status="sent", attempt=1)

    answer = receive(inbox, "2", references=["our-reply@kefu"])

    assert answer.conversation.pk == conversation.pk


def test_a_reference_into_another_inbox_is_ignored(inbox):
    other = InboxFactory(store=inbox.store)
    receive(other, "elsewhere")

    result = receive(inbox, "1", references=["elsewhere"])

    assert result.conversation_created
    assert result.conversation.inbox_id == inbox.pk


def test_a_reference_to_a_merged_conversation_follows_the_merge(inbox):
    source = receive(inbox, "1").conversation
    target = Conversation.objects.create(
        inbox=inbox, customer=source.customer, last_message_at=ago(days=20)
    )
    actions.merge_conversations(source=source, target=target, actor=None)

    result = receive(inbox, "2", references=["1"])

    assert result.conversation.pk == target.pk


def test_a_reference_to_a_closed_conversation_starts_a_new_one(inbox, agent):
    closed = receive(inbox, "1").conversation
    actions.set_status(conversation=closed, actor=agent, status=Status.CLOSED)
    closed_events = kinds(closed)

    result = receive(inbox, "2", references=["1"])

    assert result.conversation_created
    closed.refresh_from_db()
    assert (closed.status, closed.message_count, closed.unread_count) == (Status.CLOSED, 1, 1)
    assert kinds(closed) == closed_events


def test_a_thread_key_wins_over_the_window(inbox):
    chat = receive(inbox, "1", thread_key="session-7", sent_at=ago(days=9)).conversation
    recent = receive(inbox, "2", sent_at=ago(hours=1)).conversation

    result = receive(inbox, "3", thread_key="session-7")

    assert result.conversation.pk == chat.pk != recent.pk
    assert Conversation.objects.get(pk=chat.pk).thread_key == "session-7"


def test_a_thread_key_longer_than_the_column_still_threads(inbox):
    key = "session-" + "x" * 300
    first = receive(inbox, "1", thread_key=key, sent_at=ago(days=9))

    second = receive(inbox, "2", thread_key=key)

    assert second.conversation.pk == first.conversation.pk
    assert Conversation.objects.get().thread_key == key[:200]


def test_a_thread_key_of_a_closed_conversation_starts_a_new_one(inbox, agent):
    chat = receive(inbox, "1", thread_key="session-7").conversation
    actions.set_status(conversation=chat, actor=agent, status=Status.CLOSED)

    result = receive(inbox, "2", thread_key="session-7")

    assert result.conversation_created
    assert result.conversation.thread_key == "session-7"


def test_a_closed_conversation_never_reopens(inbox, agent):
    closed = receive(inbox, "1").conversation
    actions.set_status(conversation=closed, actor=agent, status=Status.CLOSED)
    closed_events = kinds(closed)

    result = receive(inbox, "2")

    assert result.conversation_created
    closed.refresh_from_db()
    assert (closed.status, closed.message_count) == (Status.CLOSED, 1)
    assert kinds(closed) == closed_events


def test_a_solved_conversation_reopens_within_the_window(inbox, agent):
    conversation = receive(inbox, "1").conversation
    actions.reply(conversation=conversation, actor=agent, text="Refunded.", status=Status.SOLVED)
    assert Conversation.objects.get().solved_at is not None

    result = receive(inbox, "2", text="Thanks, but one more thing")

    assert result.conversation.pk == conversation.pk
    conversation.refresh_from_db()
    assert conversation.status == Status.OPEN
    assert conversation.solved_at is None
    assert conversation.waiting_since == result.message.sent_at
    reopened = ConversationEvent.objects.get(conversation=conversation, kind=EventKind.REOPENED)
    assert reopened.data == {"from": Status.SOLVED, "to": Status.OPEN, "by": "customer"}
    assert reopened.actor_id is None


def test_a_solved_conversation_outside_the_window_stays_solved(inbox, agent, settings):
    settings.KEFU_THREAD_WINDOW_HOURS = 24
    conversation = receive(inbox, "1", sent_at=ago(days=3)).conversation
    actions.reply(
        conversation=conversation, actor=agent, text="Done", status=Status.SOLVED, at=ago(days=3)
    )

    result = receive(inbox, "2")

    assert result.conversation_created
    conversation.refresh_from_db()
    assert conversation.status == Status.SOLVED
    assert not ConversationEvent.objects.filter(kind=EventKind.REOPENED).exists()


@pytest.mark.parametrize("waiting", [Status.PENDING, Status.ON_HOLD])
def test_pending_and_on_hold_go_back_to_open(inbox, agent, waiting):
    conversation = receive(inbox, "1").conversation
    actions.set_status(conversation=conversation, actor=agent, status=waiting)

    receive(inbox, "2")

    conversation.refresh_from_db()
    assert conversation.status == Status.OPEN
    change = ConversationEvent.objects.filter(kind=EventKind.STATUS_CHANGED).order_by("pk").last()
    assert change.data == {"from": waiting, "to": Status.OPEN, "by": "customer"}
    assert not ConversationEvent.objects.filter(kind=EventKind.REOPENED).exists()


@pytest.mark.parametrize("status", [Status.NEW, Status.OPEN])
def test_new_and_open_conversations_keep_their_status(inbox, agent, status):
    conversation = receive(inbox, "1").conversation
    if status != Status.NEW:
        actions.set_status(conversation=conversation, actor=agent, status=status)
    before = ConversationEvent.objects.filter(kind=EventKind.STATUS_CHANGED).count()

    receive(inbox, "2")

    assert Conversation.objects.get().status == status
    assert ConversationEvent.objects.filter(kind=EventKind.STATUS_CHANGED).count() == before


# --- denormalized fields -------------------------------------------------------------------


def test_the_inbox_list_fields_follow_messages_and_replies(inbox, agent):
    t1, t2 = ago(minutes=30), ago(minutes=20)
    conversation = receive(inbox, "1", text="first", sent_at=t1).conversation
    receive(inbox, "2", text="second", sent_at=t2)
    conversation.refresh_from_db()
    assert (conversation.unread_count, conversation.message_count) == (2, 2)
    assert conversation.waiting_since == t1
    assert conversation.last_inbound_at == t2
    assert (conversation.last_message_at, conversation.last_message_preview) == (t2, "second")

    reply = actions.reply(conversation=conversation, actor=agent, text="on its way")
    conversation.refresh_from_db()
    assert conversation.waiting_since is None
    assert conversation.unread_count == 0
    assert conversation.message_count == 3
    assert conversation.first_response_at == reply.sent_at
    assert conversation.last_message_at == reply.sent_at
    assert conversation.last_message_preview == "on its way"
    assert conversation.status == Status.OPEN

    third = receive(inbox, "3", text="third").message
    actions.reply(conversation=conversation, actor=agent, text="again")
    conversation.refresh_from_db()
    assert conversation.first_response_at == reply.sent_at
    assert conversation.message_count == 5
    assert conversation.last_inbound_at == third.sent_at


def test_the_waiting_clock_restarts_at_the_first_unanswered_message(inbox, agent):
    conversation = receive(inbox, "1", sent_at=ago(hours=3)).conversation
    actions.reply(conversation=conversation, actor=agent, text="ok")
    t3 = ago(minutes=10)

    receive(inbox, "2", sent_at=t3)
    receive(inbox, "3", sent_at=ago(minutes=5))

    conversation.refresh_from_db()
    assert conversation.waiting_since == t3
    assert conversation.unread_count == 2


def test_a_late_older_message_counts_but_keeps_the_newest_preview(inbox):
    newest = ago(minutes=1)
    receive(inbox, "1", text="newest", sent_at=newest)

    receive(inbox, "0", text="older, delivered late", sent_at=ago(minutes=10))

    conversation = Conversation.objects.get()
    assert (conversation.last_message_at, conversation.last_message_preview) == (newest, "newest")
    assert conversation.last_inbound_at == newest
    assert (conversation.unread_count, conversation.message_count) == (2, 2)


def test_the_preview_is_one_line_of_at_most_200_characters(inbox):
    receive(inbox, "1", text="line one\n\nline two " + "x" * 400)
    preview = Conversation.objects.get().last_message_preview
    assert preview.startswith("line one line two x")
    assert len(preview) == 200


def test_the_language_is_detected_on_message_conversation_and_new_customer(inbox):
    receive(inbox, "1", text="Hola, ¿dónde está mi pedido? Lo compré hace dos semanas.")
    assert Message.objects.get().language == "es"
    assert Conversation.objects.get().language == "es"
    assert Customer.objects.get().language == "es"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Where is my order? I ordered it two weeks ago.", "en"),
        ("我的订单呢？", "zh"),
        ("أين طلبي؟ لقد طلبته منذ أسبوعين", "ar"),
        ("Hola, ¿dónde está mi pedido?", "es"),
        ("Wo ist meine Bestellung? Ich warte seit zwei Wochen.", "de"),
    ],
)
def test_the_shipped_languages_are_detected(inbox, text, language):
    receive(inbox, "1", text=text)
    assert Message.objects.get().language == language


def test_a_short_message_sets_no_language(inbox):
    receive(inbox, "1", text="ok")
    assert (Message.objects.get().language, Conversation.objects.get().language) == ("", "")


# --- html and attachments ------------------------------------------------------------------


def test_html_is_sanitized_and_gives_the_text(inbox):
    receive(
        inbox,
        "1",
        text="",
        html=(
            '<p onclick="steal()">Where is <b>my</b> order?</p><script>alert(1)</script>'
            '<img src="https://x.test/a.png" onerror="alert(2)"><a href="javascript:x()">l</a>'
        ),
    )

    message = Message.objects.get()
    assert "<script" not in message.html and "alert(1)" not in message.html
    assert "onerror" not in message.html and "onclick" not in message.html
    assert "javascript:" not in message.html
    assert "<b>my</b>" in message.html
    assert message.text.startswith("Where is my order?")
    assert "alert" not in message.text


def test_text_taken_from_html_has_its_entities_decoded(inbox):
    receive(inbox, "1", text="", html="<p>Tom &amp; Jerry &lt;3&nbsp;you</p>")
    assert Message.objects.get().text == "Tom & Jerry <3 you"


def test_text_taken_from_html_keeps_blocks_apart(inbox):
    receive(
        inbox,
        "1",
        text="",
        html=(
            "<div>Hello,<br>my order<div>#1042</div></div><p>never came.</p>"
            "<ul><li>Tracking</li><li>1Z999</li></ul><table><tr><td>a</td><td>b</td></tr></table>"
        ),
    )
    assert (
        Message.objects.get().text == "Hello,\nmy order\n#1042\nnever came.\nTracking\n1Z999\na b"
    )
    assert Conversation.objects.get().last_message_preview == (
        "Hello, my order #1042 never came. Tracking 1Z999 a b"
    )


def test_a_given_text_is_kept_next_to_the_html(inbox):
    receive(inbox, "1", text="plain version", html="<p>rich <i>version</i></p>")
    message = Message.objects.get()
    assert (message.text, message.html) == ("plain version", "<p>rich <i>version</i></p>")


def test_attachments_over_the_inbox_limit_are_recorded_as_refused(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    inbox = InboxFactory(config={"max_attachment_bytes": 10})

    result = receive(
        inbox,
        "1",
        attachments=[
            InboundAttachment("../../etc/passwd", "text/plain", b"12345"),
            InboundAttachment("big.jpg", "image/jpeg", b"x" * 11),
            InboundAttachment("virus.exe", size=3, refused_reason="blocked type"),
        ],
    )

    small, big, blocked = Attachment.objects.order_by("pk")
    assert {a.message_id for a in (small, big, blocked)} == {result.message.pk}
    assert (small.filename, small.size, small.refused_reason) == ("passwd", 5, "")
    assert small.file.read() == b"12345"
    assert tmp_path in (tmp_path / small.file.name).parents
    assert (big.filename, big.size) == ("big.jpg", 11)
    assert big.refused_reason == "larger than the inbox limit of 10 bytes"
    assert not big.file
    assert (blocked.refused_reason, bool(blocked.file)) == ("blocked type", False)


# --- domain events -------------------------------------------------------------------------


def test_events_are_emitted_after_commit(inbox, events, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = receive(inbox, "1")
        assert events == []  # not before the commit

    assert len(callbacks) == 4  # the three events, and search noting the entries it wrote
    assert [(e.name, e.payload) for e in events] == [
        ("customer.created", {"customer_id": result.conversation.customer_id}),
        (
            "conversation.created",
            {"conversation_id": result.conversation.pk, "inbox_id": inbox.pk},
        ),
        (
            "message.received",
            {
                "conversation_id": result.conversation.pk,
                "message_id": result.message.pk,
                "inbox_id": inbox.pk,
            },
        ),
    ]


def test_a_message_into_an_existing_conversation_emits_only_message_received(
    inbox, events, django_capture_on_commit_callbacks
):
    receive(inbox, "1")
    events.clear()
    with django_capture_on_commit_callbacks(execute=True):
        receive(inbox, "2")
    assert [e.name for e in events] == ["message.received"]


def test_nothing_is_emitted_or_stored_when_the_transaction_rolls_back(
    inbox, events, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        receive(inbox, "1")
        raise RuntimeError("the caller failed after receiving")

    assert events == []
    assert counts() == (0, 0, 0, 0, 0)


def test_a_duplicate_emits_nothing(inbox, django_capture_on_commit_callbacks):
    receive(inbox, "1")
    with django_capture_on_commit_callbacks() as callbacks:
        receive(inbox, "1")
    assert callbacks == []


def test_a_failing_subscriber_does_not_undo_the_message(inbox, django_capture_on_commit_callbacks):
    def broken(event):
        raise RuntimeError("subscriber bug")

    subscribe("message.received")(broken)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            result = receive(inbox, "1")
    finally:
        unsubscribe("message.received", broken)
    assert Message.objects.filter(pk=result.message.pk).exists()


# --- query counts on the hot path ----------------------------------------------------------


def _loaded(inbox):
    """The inbox as the API hands it over: fetched with its store."""
    from kefu.conversations.models import Inbox

    return Inbox.objects.select_related("store").get(pk=inbox.pk)


def test_queries_for_a_new_customer_and_a_new_conversation(
    inbox, django_assert_num_queries, single_path_only
):
    inbox = _loaded(inbox)
    # duplicate check, identities; savepoint, customer, savepoint + identity + release,
    # thread candidates, conversation, message, events, search's savepoint + message entry +
    # customer entry + release, release; on SQLite the FTS5 inserts of both entries and the
    # read of the customer's (see SqliteEngine.write_customers)
    with django_assert_num_queries(16 if connection.vendor == "postgresql" else 19):
        result = receive(inbox, "1")
    assert result.conversation_created


def test_queries_for_a_known_customer_and_an_open_conversation(
    inbox, django_assert_num_queries, single_path_only
):
    receive(inbox, "1")
    inbox = _loaded(inbox)
    # duplicate check, identities; savepoint, conversation (locked), summary, message, events,
    # search's savepoint + message entry + customer entry + release, release; on SQLite the
    # entry's FTS5 insert and the read of the customer's
    with django_assert_num_queries(12 if connection.vendor == "postgresql" else 14):
        result = receive(inbox, "2")
    assert not result.conversation_created


def test_queries_for_a_duplicate(inbox, django_assert_num_queries, single_path_only):
    receive(inbox, "1")
    inbox = _loaded(inbox)
    with django_assert_num_queries(2):
        result = receive(inbox, "1")
    assert not result.created


# --- concurrency (PostgreSQL) ---------------------------------------------------------------


def _together(*jobs):
    """Run ``jobs`` in threads released at the same moment; returns the exceptions raised."""
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job):
        try:
            barrier.wait()
            job()
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_first_messages_of_a_new_customer_at_once_make_one_customer(events, single_path_only):
    inbox = InboxFactory()

    errors = _together(
        lambda: receive(inbox, "first", [("email", "race@example.com")]),
        lambda: receive(inbox, "second", [("email", "RACE@example.com")]),
    )

    assert errors == []
    created = [e.payload["customer_id"] for e in events if e.name == "customer.created"]
    assert created == [Customer.objects.get().pk]
    assert Customer.objects.count() == 1
    assert list(Identity.objects.values_list("value", flat=True)) == ["race@example.com"]
    assert Message.objects.count() == 2
    assert set(Message.objects.values_list("conversation__customer_id", flat=True)) == {
        Customer.objects.get().pk
    }


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_delivery_twice_at_once_is_stored_once(single_path_only):
    inbox = InboxFactory()
    results: list = []

    errors = _together(
        lambda: results.append(receive(inbox, "same", [("email", "race@example.com")])),
        lambda: results.append(receive(inbox, "same", [("email", "race@example.com")])),
    )

    assert errors == []
    assert Message.objects.count() == 1
    assert sorted(r.created for r in results) == [False, True]
    assert {r.message.pk for r in results} == {Message.objects.get().pk}
