"""Inbound input that no database should ever see as it came: NUL characters, impossible dates,
odd store countries, absurd inbox settings. Each was a 500 (on PostgreSQL, or on both) before.

Every rule holds on both ways a message is stored (the single and the bulk path): the ``way``
fixture of test_core_pipeline runs each test twice.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as fuzz_settings
from hypothesis import strategies as st

from kefu.conversations.inbound import InboundAttachment
from kefu.conversations.models import Attachment, Conversation, Message
from kefu.core.errors import InvalidInput
from kefu.customers.models import Customer, Identity
from tests.conversations.test_core_pipeline import ago, counts, receive, way  # noqa: F401
from tests.factories import InboxFactory, StoreFactory

pytestmark = pytest.mark.django_db

NUL = "\x00"


# --- NUL characters (PostgreSQL text refuses them) ---------------------------------------------


def test_nul_characters_are_dropped_from_every_field_of_a_message(inbox):
    result = receive(
        inbox,
        f"m{NUL}-1",
        [("email", f"ana@exam{NUL}ple.com"), ("external", f"shop{NUL}-7")],
        text=f"Where{NUL} is it?",
        html=f"<p>Where{NUL} is <b>it</b>?</p>",
        subject=f"Or{NUL}der",
        customer_name=f"A{NUL}na",
        thread_key=f"chat{NUL}-1",
        references=[f"earlier{NUL}"],
        metadata={f"k{NUL}": [f"v{NUL}", 1, {"n": f"{NUL}"}]},
    )

    assert result.created
    message = Message.objects.get()
    assert (message.external_id, message.text, message.subject) == ("m-1", "Where is it?", "Order")
    assert message.html == "<p>Where is <b>it</b>?</p>"
    assert message.metadata == {"k": ["v", 1, {"n": ""}]}
    assert Customer.objects.get().name == "Ana"
    assert sorted(Identity.objects.values_list("kind", "value")) == [
        ("email", "ana@example.com"),
        ("external", "shop-7"),
    ]
    assert Conversation.objects.get().thread_key == "chat-1"


def test_a_retry_with_the_same_nul_is_still_the_same_message(inbox):
    first = receive(inbox, f"m-1{NUL}", text=f"a{NUL}b")

    again = receive(inbox, f"m-1{NUL}", text=f"a{NUL}b")

    assert not again.created
    assert again.message.pk == first.message.pk
    assert Message.objects.count() == 1


@pytest.mark.parametrize("external_id", [NUL, f" {NUL} "])
def test_an_external_id_of_nothing_but_nul_is_refused(inbox, external_id):
    with pytest.raises(InvalidInput) as refused:
        receive(inbox, external_id)
    assert refused.value.field == "external_id"
    assert counts() == (0, 0, 0, 0, 0)


def test_a_text_of_nothing_but_nul_is_an_empty_message(inbox):
    with pytest.raises(InvalidInput) as refused:
        receive(inbox, "m-1", text=NUL * 3)
    assert refused.value.field == "text"
    assert counts() == (0, 0, 0, 0, 0)


def test_an_identity_of_nothing_but_nul_is_refused(inbox):
    with pytest.raises(InvalidInput):
        receive(inbox, "m-1", [("external", NUL)])
    assert counts() == (0, 0, 0, 0, 0)


def test_attachment_fields_are_cleaned_and_a_long_refusal_reason_is_cut(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    inbox = InboxFactory()

    receive(
        inbox,
        "m-1",
        attachments=[
            InboundAttachment(f"a{NUL}.txt", f"text/pl{NUL}ain", b"x"),
            InboundAttachment("b.exe", size=1, refused_reason=f"blocked{NUL} " + "r" * 500),
            InboundAttachment("c.bin", size=-5, refused_reason="not fetched"),
        ],
    )

    kept, refused, unknown = Attachment.objects.order_by("pk")
    assert (unknown.size, unknown.refused_reason) == (0, "not fetched")
    assert (kept.filename, kept.content_type, kept.refused_reason) == ("a_.txt", "text/plain", "")
    assert refused.refused_reason.startswith("blocked r")
    assert len(refused.refused_reason) == 200
    assert not refused.file


# --- dates -------------------------------------------------------------------------------------


def test_a_naive_sent_at_is_read_as_utc(inbox):
    naive = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(minutes=5)

    receive(inbox, "m-1", sent_at=naive)

    assert Message.objects.get().sent_at == naive.replace(tzinfo=UTC)
    assert Conversation.objects.get().last_message_at == naive.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "sent_at",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1, 1, 1),  # naive, read as UTC
        datetime(1969, 12, 31, 23, 59, tzinfo=UTC),
    ],
)
def test_a_sent_at_before_1970_is_refused_and_stores_nothing(inbox, sent_at):
    with pytest.raises(InvalidInput) as refused:
        receive(inbox, "m-1", sent_at=sent_at)
    assert refused.value.field == "sent_at"
    assert counts() == (0, 0, 0, 0, 0)


def test_the_first_second_of_1970_is_accepted(inbox):
    start = datetime(1970, 1, 1, tzinfo=UTC)
    receive(inbox, "m-1", sent_at=start)
    assert Message.objects.get().sent_at == start


# --- inbox and store settings ------------------------------------------------------------------


def test_an_absurdly_long_thread_window_is_clamped_not_a_crash():
    inbox = InboxFactory(thread_window_hours=2**31 - 1)
    first = receive(inbox, "m-1", sent_at=ago(days=400))

    second = receive(inbox, "m-2")

    assert second.conversation.pk == first.conversation.pk


def test_a_thread_window_is_clamped_to_ten_years():
    inbox = InboxFactory(thread_window_hours=2**31 - 1)
    first = receive(inbox, "m-1", sent_at=timezone.now() - timedelta(days=11 * 366))

    second = receive(inbox, "m-2")

    assert second.conversation_created
    assert second.conversation.pk != first.conversation.pk


@pytest.mark.parametrize(
    ("country", "local", "e164"),
    [
        ("de", "0151 23456789", "+4915123456789"),  # lower case
        ("", "(415) 555-0100", "+14155550100"),  # no country: the default region
        ("XX", "(415) 555-0100", "+14155550100"),  # unknown country: the default region
    ],
)
def test_local_numbers_are_read_in_the_stores_country_whatever_its_spelling(
    settings, country, local, e164
):
    settings.KEFU_DEFAULT_PHONE_REGION = "US"
    inbox = InboxFactory(store=StoreFactory(country=country))

    receive(inbox, "m-1", [("phone", local)])

    assert list(Identity.objects.values_list("kind", "value")) == [("phone", e164)]


# --- anything a connector could hand over ------------------------------------------------------

any_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)


@fuzz_settings(
    max_examples=int(os.environ.get("KEFU_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    external_id=st.one_of(st.none(), any_text),
    identities=st.lists(
        st.tuples(st.sampled_from(["email", "phone", "external", "whatsapp", "bogus"]), any_text),
        max_size=3,
    ),
    text=any_text,
    html=any_text,
    subject=any_text,
    name=any_text,
    thread_key=any_text,
    references=st.lists(any_text, max_size=3),
    sent_at=st.one_of(st.none(), st.datetimes(timezones=st.just(UTC))),
)
def test_any_inbound_message_is_stored_or_refused_with_invalid_input(
    inbox, external_id, identities, text, html, subject, name, thread_key, references, sent_at
):
    try:
        result = receive(
            inbox, external_id, identities, text=text, html=html, subject=subject,
            customer_name=name, thread_key=thread_key, references=references, sent_at=sent_at,
        )  # fmt: skip
    except InvalidInput as refused:
        assert refused.message
        return
    stored = Message.objects.get(pk=result.message.pk)
    assert "\x00" not in stored.text + stored.subject + stored.html
