"""REST API v1, endpoint by endpoint: answers, scoping, authentication, and bad input.

Bad input must give a 400/422 with a JSON ``detail`` and store nothing; a foreign id must be a
404 indistinguishable from a missing one.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from kefu.accounts.actions import create_token, revoke_token
from kefu.accounts.models import Role
from kefu.conversations import actions
from kefu.conversations.inbound import InboundAttachment, InboundMessage
from kefu.conversations.models import (
    Conversation,
    ConversationEvent,
    EventKind,
    InboxKind,
    InboxMembership,
    Message,
    Tag,
)
from kefu.customers.models import Customer, Identity
from tests.factories import AgentFactory, InboxFactory, StoreFactory, TeamFactory

pytestmark = pytest.mark.django_db


def body(inbox, external_id="m-1", **overrides):
    payload = {
        "inbox_id": inbox.pk,
        "external_id": external_id,
        "customer": {"name": "Ana", "email": "ana@example.com"},
        "text": "Where is my order #1042?",
    }
    payload.update(overrides)
    return payload


def stored():
    """Everything a submission could have written."""
    return (
        Customer.objects.count(),
        Identity.objects.count(),
        Conversation.objects.count(),
        Message.objects.count(),
        ConversationEvent.objects.count(),
    )


NOTHING = (0, 0, 0, 0, 0)


class Caller:
    """A test client speaking JSON with one bearer token (or none)."""

    def __init__(self, client, token: str | None) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path, **params):
        return self.client.get(path, params, headers=self.headers)

    def send(self, method, path, payload):
        return getattr(self.client, method)(
            path, json.dumps(payload), content_type="application/json", headers=self.headers
        )

    def post(self, path, payload):
        return self.send("post", path, payload)

    def patch(self, path, payload):
        return self.send("patch", path, payload)


def caller_for(client, agent):
    return Caller(client, create_token(user=agent, name="test")[1])


@pytest.fixture
def me(client, agent):
    return caller_for(client, agent)


def submit(me, inbox, external_id="m-1", **overrides):
    return me.post("/api/v1/messages", body(inbox, external_id, **overrides))


def a_conversation(inbox, external_id="m-1", email="ana@example.com", **kwargs):
    return actions.receive_message(
        inbox=inbox,
        message=InboundMessage(
            external_id=external_id,
            identities=[("email", email)],
            text=kwargs.pop("text", "Where is my order?"),
            **kwargs,
        ),
    ).conversation


# --- POST /api/v1/messages -------------------------------------------------------------------


def test_submit_answers_202_with_the_ids(me, inbox):
    customer = {
        "name": "Ana",
        "email": "Ana@Example.com",
        "phone": "+1 415 555 0100",
        "external_id": "crm-7",
    }
    response = submit(me, inbox, customer=customer)

    assert response.status_code == 202
    message = Message.objects.get()
    assert response.json() == {
        "conversation_id": message.conversation_id,
        "message_id": message.pk,
        "created": True,
    }
    assert message.external_id == "m-1"
    customer = Customer.objects.get()
    assert customer.name == "Ana"
    assert set(customer.identities.values_list("kind", "value")) == {
        ("email", "ana@example.com"),
        ("phone", "+14155550100"),
        ("external", "crm-7"),
    }


def test_a_repeated_external_id_returns_the_same_ids_and_stores_nothing(me, inbox):
    first = submit(me, inbox).json()
    before = stored()

    again = submit(me, inbox, text="a retry with another body")

    assert again.status_code == 202
    assert again.json() == {**first, "created": False}
    assert stored() == before
    assert Message.objects.get().text == "Where is my order #1042?"


def test_sent_at_is_kept_naive_means_utc_and_the_future_is_clamped(me, inbox):
    submit(me, inbox, "past", sent_at="2026-01-02T03:04:05+08:00")
    submit(me, inbox, "naive", sent_at="2026-01-02T03:04:05")
    submit(me, inbox, "future", sent_at="2999-01-01T00:00:00Z")

    times = dict(Message.objects.values_list("external_id", "sent_at"))
    assert times["past"] == datetime(2026, 1, 1, 19, 4, 5, tzinfo=UTC)
    assert times["naive"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert times["future"] <= timezone.now() + timedelta(minutes=5)


def test_references_and_thread_key_thread_the_message(me, inbox):
    first = submit(me, inbox, "first", thread_key="order-1042").json()
    other = submit(me, inbox, "other", customer={"email": "ben@example.com"}).json()

    by_key = submit(me, inbox, "by-key", thread_key="order-1042",
                    customer={"email": "ana@example.com"}).json()  # fmt: skip
    by_reference = submit(me, inbox, "by-ref", references=["other"],
                          customer={"email": "ben@example.com"}).json()  # fmt: skip

    assert by_key["conversation_id"] == first["conversation_id"]
    assert by_reference["conversation_id"] == other["conversation_id"]


def test_html_only_messages_are_sanitized(me, inbox):
    response = submit(me, inbox, text="", html="<p>Hi<script>alert(1)</script></p>")
    assert response.status_code == 202
    message = Message.objects.get()
    assert (message.html, message.text) == ("<p>Hi</p>", "Hi")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"external_id": ""}, "external_id"),
        ({"external_id": "   "}, "external_id"),
        ({"external_id": "x" * 256}, "external_id"),
        ({"external_id": 42}, "external_id"),
        ({"customer": {"email": "not-an-email"}}, "email"),
        ({"customer": {"email": "ana@"}}, "email"),
        ({"customer": {"phone": "12"}}, "phone"),
        ({"customer": {"phone": "call me"}}, "phone"),
        ({"customer": {"name": "Only a name"}}, "customer"),
        ({"customer": {}}, "customer"),
        ({"customer": {"email": "ana@example.com", "vip": True}}, "vip"),
        ({"customer": "ana@example.com"}, "customer"),
        ({"text": ""}, "text"),
        ({"text": 123}, "text"),
        ({"text": "x" * 200_001}, "text"),
        ({"surprise": "field"}, "surprise"),
        ({"inbox_id": "one"}, "inbox_id"),
        ({"inbox_id": None}, "inbox_id"),
        ({"sent_at": "yesterday"}, "sent_at"),
        ({"references": "m-0"}, "references"),
        ({"thread_key": "k" * 201}, "thread_key"),
        ({"subject": "s" * 301}, "subject"),
    ],
)
def test_bad_payloads_are_refused_with_a_message_and_store_nothing(me, inbox, change, field):
    response = me.post("/api/v1/messages", body(inbox) | change)

    assert response.status_code == 422, response.content
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    assert field in json.dumps(response.json())
    assert stored() == NOTHING


@pytest.mark.parametrize("raw", ["{not json", "", "[1, 2]", "null", '"text"', "42"])
def test_a_body_that_is_not_a_json_object_is_refused(me, inbox, raw):
    response = me.client.post(
        "/api/v1/messages", raw, content_type="application/json", headers=me.headers
    )
    assert response.status_code in (400, 422)
    assert response.json()["detail"]
    assert stored() == NOTHING


def test_missing_fields_are_named(me, inbox):
    response = me.post("/api/v1/messages", {"inbox_id": inbox.pk})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "external_id" in detail and "customer" in detail
    assert stored() == NOTHING


@pytest.mark.parametrize("kind", [k for k in InboxKind.values if k != InboxKind.API])
def test_only_api_inboxes_take_messages(me, agent, kind):
    inbox = InboxFactory(kind=kind)
    InboxMembership.objects.create(inbox=inbox, agent=agent)

    response = submit(me, inbox)

    assert response.status_code == 422
    assert response.json() == {
        "detail": f"inbox {inbox.pk} is a {kind} inbox; only API inboxes take messages here",
        "field": "inbox_id",
    }
    assert stored() == NOTHING


def test_a_disabled_inbox_takes_no_messages(me, inbox):
    inbox.is_active = False
    inbox.save()

    single = submit(me, inbox)
    batch = me.post("/api/v1/messages/batch", {"messages": [body(inbox, "b")]})

    assert single.status_code == 422
    assert single.json() == {"detail": f"inbox {inbox.pk} is disabled", "field": "inbox_id"}
    assert batch.json()["results"][0]["error"] == f"inbox {inbox.pk} is disabled"
    assert stored() == NOTHING


def test_queries_per_submission(me, inbox, django_assert_num_queries):
    me.get("/api/v1/inboxes")  # the token is looked up once, then memoized for a few seconds
    # inbox, duplicate check, identities; savepoint, customer, savepoint + identity + release,
    # thread candidates, conversation, message, events, search's savepoint + message entry +
    # customer entry + release, release; on SQLite the FTS5 inserts of both entries and the
    # read of the customer's (see SqliteEngine.write_customers)
    with django_assert_num_queries(17 if connection.vendor == "postgresql" else 20):
        assert submit(me, inbox, "a").json()["created"]
    # (the inbox now comes from this process's memo) duplicate check, identities; savepoint,
    # conversation, summary, message, event, search's savepoint + 2 entries + release, release;
    # on SQLite the entry's FTS5 insert and the read of the customer's
    with django_assert_num_queries(12 if connection.vendor == "postgresql" else 14):
        assert submit(me, inbox, "b").json()["created"]
    # duplicate check, the stored message
    with django_assert_num_queries(2):
        assert not submit(me, inbox, "b").json()["created"]


def test_the_inbox_memo_never_outlives_a_change_in_this_process(me, agent, inbox):
    # Given an inbox the ingest path has memoized
    assert submit(me, inbox, "a").status_code == 202

    # When it is disabled, then the next message is refused at once
    inbox.is_active = False
    inbox.save()
    assert submit(me, inbox, "b").status_code == 422

    # When the agent loses access, then the inbox is not found at once
    inbox.is_active = True
    inbox.save()
    assert submit(me, inbox, "c").status_code == 202
    InboxMembership.objects.filter(agent=agent, inbox=inbox).delete()
    assert submit(me, inbox, "d").status_code == 404


def test_an_unknown_inbox_is_a_404(me, inbox):
    response = me.post("/api/v1/messages", body(inbox) | {"inbox_id": 10**30})
    assert response.status_code == 404
    assert stored() == NOTHING


# --- POST /api/v1/messages/batch -------------------------------------------------------------


def test_batch_gives_one_result_per_item_in_order(me, inbox):
    items = [
        body(inbox, "a"),
        body(inbox, "b", customer={"email": "not-an-email"}),
        body(inbox, "c", customer={"phone": "+49 151 23456789"}),
        body(inbox, "a", text="the same id again in one batch"),
        body(inbox, "d", text="  "),
        body(inbox, "e", customer={"name": "No way to reach me"}),
    ]

    response = me.post("/api/v1/messages/batch", {"messages": items})

    assert response.status_code == 202
    results = response.json()["results"]
    assert [(r["index"], r["status"]) for r in results] == [
        (0, "created"),
        (1, "error"),
        (2, "created"),
        (3, "duplicate"),
        (4, "error"),
        (5, "error"),
    ]
    a = Message.objects.get(external_id="a")
    assert (results[0]["message_id"], results[0]["conversation_id"]) == (a.pk, a.conversation_id)
    assert (results[3]["message_id"], results[3]["conversation_id"]) == (a.pk, a.conversation_id)
    assert "email" in results[1]["error"]
    assert results[1]["message_id"] is None and results[1]["conversation_id"] is None
    assert results[4]["error"]
    assert "identity" in results[5]["error"]
    assert sorted(Message.objects.values_list("external_id", flat=True)) == ["a", "c"]
    assert a.text == "Where is my order #1042?"


def test_a_retried_batch_answers_with_the_first_ids(me, inbox):
    items = [body(inbox, f"m{i}", customer={"email": f"c{i}@example.com"}) for i in range(5)]
    first = me.post("/api/v1/messages/batch", {"messages": items}).json()["results"]
    before = stored()

    again = me.post("/api/v1/messages/batch", {"messages": items}).json()["results"]

    assert stored() == before
    assert [r["status"] for r in again] == ["duplicate"] * 5
    assert [(r["message_id"], r["conversation_id"]) for r in again] == [
        (r["message_id"], r["conversation_id"]) for r in first
    ]


def test_a_batch_matches_earlier_single_submissions(me, inbox):
    single = submit(me, inbox, "m-1").json()

    results = me.post(
        "/api/v1/messages/batch", {"messages": [body(inbox, "m-1"), body(inbox, "m-2")]}
    ).json()["results"]

    assert results[0] == {"index": 0, "status": "duplicate", "error": None,
                          "conversation_id": single["conversation_id"],
                          "message_id": single["message_id"]}  # fmt: skip
    assert results[1]["status"] == "created"
    assert results[1]["conversation_id"] == single["conversation_id"]  # same customer, window


def test_batch_items_for_foreign_or_non_api_inboxes_fail_alone(me, inbox, agent):
    foreign = InboxFactory()
    email_inbox = InboxFactory(kind=InboxKind.EMAIL)
    InboxMembership.objects.create(inbox=email_inbox, agent=agent)

    results = me.post(
        "/api/v1/messages/batch",
        {"messages": [body(foreign, "x"), body(inbox, "y"), body(email_inbox, "z")]},
    ).json()["results"]

    assert [r["status"] for r in results] == ["error", "created", "error"]
    assert results[0]["error"] == f"inbox {foreign.pk} not found"
    assert "email inbox" in results[2]["error"]
    assert list(Message.objects.values_list("external_id", flat=True)) == ["y"]


@pytest.mark.parametrize(
    "payload",
    [
        {"messages": []},
        {},
        {"messages": "all of them"},
        {"messages": [{"inbox_id": 1}]},
        {"messages": [], "extra": 1},
    ],
)
def test_a_malformed_batch_is_refused_whole(me, inbox, payload):
    response = me.post("/api/v1/messages/batch", payload)
    assert response.status_code == 422
    assert response.json()["detail"]
    assert stored() == NOTHING


def test_a_batch_of_more_than_500_is_refused(me, inbox):
    items = [body(inbox, f"m{i}") for i in range(501)]
    response = me.post("/api/v1/messages/batch", {"messages": items})
    assert response.status_code == 422
    assert stored() == NOTHING


def test_a_schema_error_in_one_item_refuses_the_batch_and_names_the_item(me, inbox):
    items = [body(inbox, "a"), body(inbox, "x" * 300)]
    response = me.post("/api/v1/messages/batch", {"messages": items})
    assert response.status_code == 422
    assert "messages.1.external_id" in response.json()["detail"]
    assert stored() == NOTHING


# --- GET /api/v1/inboxes ---------------------------------------------------------------------


def test_inboxes_lists_the_callers_inboxes(me, agent, inbox):
    second = InboxFactory(kind=InboxKind.EMAIL, store=None)
    InboxMembership.objects.create(inbox=second, agent=agent)
    InboxFactory()  # not the caller's

    response = me.get("/api/v1/inboxes")

    assert response.status_code == 200
    assert response.json() == [
        {"id": inbox.pk, "name": inbox.name, "kind": "api", "store_id": inbox.store_id,
         "store": inbox.store.name},
        {"id": second.pk, "name": second.name, "kind": "email", "store_id": None, "store": None},
    ]  # fmt: skip


# --- GET /api/v1/conversations ---------------------------------------------------------------


def ids(me, **params):
    response = me.get("/api/v1/conversations", **params)
    assert response.status_code == 200, response.content
    return [c["id"] for c in response.json()["items"]]


def test_each_filter(me, agent, inbox):
    second_inbox = InboxFactory(store=inbox.store)
    InboxMembership.objects.create(inbox=second_inbox, agent=agent)
    team = TeamFactory()
    colleague = AgentFactory()
    InboxMembership.objects.create(inbox=inbox, agent=colleague)
    a = a_conversation(inbox, "a", "a@example.com")
    b = a_conversation(inbox, "b", "b@example.com")
    c = a_conversation(second_inbox, "c", "c@example.com")
    actions.set_status(conversation=a, actor=agent, status="pending")
    actions.set_priority(conversation=a, actor=agent, priority="high")
    actions.assign(conversation=a, actor=agent, assignee=agent, team=team)
    actions.assign(conversation=b, actor=agent, assignee=colleague)
    actions.tag(conversation=b, actor=agent, names=["VIP"])
    actions.set_status(conversation=c, actor=agent, status="solved")
    Conversation.objects.filter(pk=c.pk).update(updated_at=timezone.now() - timedelta(days=3))

    assert ids(me) == [b.pk, a.pk, c.pk]  # most recently updated first
    assert ids(me, status="pending") == [a.pk]
    assert ids(me, status="pending,solved") == [a.pk, c.pk]
    assert ids(me, status="new") == [b.pk]
    assert ids(me, inbox=second_inbox.pk) == [c.pk]
    assert ids(me, assignee="me") == [a.pk]
    assert ids(me, assignee="none") == [c.pk]
    assert ids(me, assignee=str(colleague.pk)) == [b.pk]
    assert ids(me, team=team.pk) == [a.pk]
    assert ids(me, priority="high") == [a.pk]
    assert ids(me, priority="normal,low") == [b.pk, c.pk]
    assert ids(me, tag="VIP") == [b.pk]
    assert ids(me, tag="vip") == [b.pk]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(me, updated_since=since) == [b.pk, a.pk]
    assert ids(me, status="pending", assignee="me", priority="high", team=team.pk) == [a.pk]


def test_a_listed_conversation_has_the_inbox_list_fields(me, agent, inbox):
    conversation = a_conversation(inbox, text="Hello there, where is my parcel?")
    actions.tag(conversation=conversation, actor=agent, names=["b", "a"])

    (item,) = me.get("/api/v1/conversations").json()["items"]

    conversation.refresh_from_db()
    assert item["id"] == conversation.pk
    assert item["number"] == f"#{conversation.pk}"
    assert item["tags"] == ["a", "b"]
    assert item["last_message_preview"] == "Hello there, where is my parcel?"
    assert (item["unread_count"], item["message_count"]) == (1, 1)
    assert item["status"] == "new" and item["priority"] == "normal"
    assert item["customer_id"] == conversation.customer_id
    assert item["inbox_id"] == inbox.pk and item["store_id"] == inbox.store_id
    assert item["waiting_since"] is not None and item["merged_into_id"] is None


def test_keyset_pages_cover_everything_once_even_with_equal_timestamps(me, inbox):
    for i in range(11):
        a_conversation(inbox, f"m{i}", f"c{i}@example.com")
    same_time = timezone.now()
    Conversation.objects.filter(pk__in=list(Conversation.objects.values_list("pk", flat=True))[3:9]
                                ).update(updated_at=same_time)  # fmt: skip

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = me.get("/api/v1/conversations", **params).json()
        seen += [c["id"] for c in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 6
    assert len(seen) == len(set(seen)) == 11
    expected = Conversation.objects.order_by("-updated_at", "-id").values_list("pk", flat=True)
    assert seen == list(expected)


def test_the_last_full_page_has_no_cursor(me, inbox):
    for i in range(4):
        a_conversation(inbox, f"m{i}", f"c{i}@example.com")
    first = me.get("/api/v1/conversations", limit=2).json()
    second = me.get("/api/v1/conversations", limit=2, cursor=first["next_cursor"]).json()
    assert len(second["items"]) == 2
    assert second["next_cursor"] is None


def _cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "garbage"},
        {"cursor": "%%%"},
        {"cursor": _cursor({"a": 1})},
        {"cursor": _cursor(["not a time", 3])},
        {"cursor": _cursor(["2026-01-01T00:00:00+00:00", "x"])},
        {"cursor": _cursor([1, 2, 3])},
        {"cursor": base64.urlsafe_b64encode(b"\xff\xfe").decode()},
        {"limit": 0},
        {"limit": 201},
        {"limit": "ten"},
        {"inbox": "one"},
        {"inbox": 10**30},
        {"team": 10**30},
        {"assignee": "someone"},
        {"assignee": str(10**30)},
        {"status": "archived"},
        {"status": "open,archived"},
        {"priority": "asap"},
        {"updated_since": "last week"},
    ],
)
def test_bad_list_parameters_are_422(me, inbox, params):
    a_conversation(inbox)
    response = me.get("/api/v1/conversations", **params)
    assert response.status_code == 422, response.content
    assert response.json()["detail"]


# --- GET /api/v1/conversations/{id} ----------------------------------------------------------


def test_detail_has_the_messages_oldest_first_with_attachments(
    me, agent, inbox, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path)
    conversation = a_conversation(
        inbox, attachments=[InboundAttachment("label.pdf", "application/pdf", b"%PDF")]
    )
    actions.reply(conversation=conversation, actor=agent, text="Here you go")
    actions.add_note(conversation=conversation, actor=agent, text="checked the carrier")

    response = me.get(f"/api/v1/conversations/{conversation.pk}")

    assert response.status_code == 200
    data = response.json()
    assert data["id"] == conversation.pk and data["number"] == f"#{conversation.pk}"
    assert [(m["direction"], m["text"]) for m in data["messages"]] == [
        ("inbound", "Where is my order?"),
        ("outbound", "Here you go"),
        ("note", "checked the carrier"),
    ]
    inbound, outbound, _ = data["messages"]
    assert inbound["external_id"] == "m-1"
    assert inbound["attachments"] == [
        {"id": inbound["attachments"][0]["id"], "filename": "label.pdf",
         "content_type": "application/pdf", "size": 4, "refused_reason": ""},
    ]  # fmt: skip
    assert outbound["author_agent_id"] == agent.pk
    assert outbound["delivery_status"] == "queued"


def test_an_unknown_conversation_is_a_404(me):
    response = me.get("/api/v1/conversations/999999")
    assert response.status_code == 404
    assert response.json() == {"detail": "conversation 999999 not found"}


# --- PATCH /api/v1/conversations/{id} --------------------------------------------------------


def test_patch_changes_status_priority_assignee_team_and_tags(me, agent, inbox):
    conversation = a_conversation(inbox)
    team = TeamFactory()

    response = me.patch(
        f"/api/v1/conversations/{conversation.pk}",
        {"status": "pending", "priority": "urgent", "assignee_id": agent.pk, "team_id": team.pk,
         "tags": ["Refund", "vip"]},
    )  # fmt: skip

    assert response.status_code == 200
    data = response.json()
    assert (data["status"], data["priority"], data["assignee_id"], data["team_id"]) == (
        "pending", "urgent", agent.pk, team.pk,
    )  # fmt: skip
    assert data["tags"] == ["refund", "vip"]
    assert len(data["messages"]) == 1
    kinds = set(ConversationEvent.objects.filter(actor=agent).values_list("kind", flat=True))
    assert kinds == {EventKind.STATUS_CHANGED, EventKind.PRIORITY_CHANGED, EventKind.ASSIGNED,
                     EventKind.TAGGED}  # fmt: skip

    data = me.patch(f"/api/v1/conversations/{conversation.pk}",
                    {"tags": ["vip", "late"], "assignee_id": None}).json()  # fmt: skip
    assert data["tags"] == ["late", "vip"]
    assert data["assignee_id"] is None and data["team_id"] == team.pk


def test_an_empty_patch_changes_nothing(me, inbox):
    conversation = a_conversation(inbox)
    before = ConversationEvent.objects.count()
    response = me.patch(f"/api/v1/conversations/{conversation.pk}", {})
    assert response.status_code == 200
    assert ConversationEvent.objects.count() == before


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"status": "solved", "priority": "asap"}, 422),
        ({"priority": "high", "assignee_id": 99999}, 422),
        ({"status": "solved", "team_id": 99999}, 422),
        ({"status": "pending", "tags": ["ok", "x" * 65]}, 422),
        ({"status": "archived"}, 422),
        ({"tags": "vip"}, 422),
        ({"tags": ["t"] * 51}, 422),
        ({"colour": "red"}, 422),
        ({"assignee_id": "me"}, 422),
    ],
)
def test_a_refused_patch_changes_nothing_at_all(me, agent, inbox, change, status):
    conversation = a_conversation(inbox)
    before = Conversation.objects.values().get(pk=conversation.pk)
    events = ConversationEvent.objects.count()

    response = me.patch(f"/api/v1/conversations/{conversation.pk}", change)

    assert response.status_code == status, response.content
    assert response.json()["detail"]
    assert Conversation.objects.values().get(pk=conversation.pk) == before
    assert ConversationEvent.objects.count() == events
    assert Tag.objects.count() == 0


def test_patching_a_closed_or_merged_conversation_is_a_conflict(me, agent, inbox):
    closed = a_conversation(inbox, "1")
    actions.set_status(conversation=closed, actor=agent, status="closed")
    source = a_conversation(inbox, "2", "ben@example.com")
    target = Conversation.objects.create(
        inbox=inbox, customer=source.customer, last_message_at=timezone.now()
    )
    actions.merge_conversations(source=source, target=target, actor=agent)

    for conversation in (closed, source):
        response = me.patch(f"/api/v1/conversations/{conversation.pk}", {"status": "open"})
        assert response.status_code == 409
        assert response.json()["detail"]


def test_assigning_someone_without_access_is_refused(me, inbox):
    stranger = AgentFactory()
    conversation = a_conversation(inbox)
    response = me.patch(f"/api/v1/conversations/{conversation.pk}", {"assignee_id": stranger.pk})
    assert response.status_code == 422
    assert response.json()["field"] == "assignee"
    assert Conversation.objects.get().assignee_id is None


# --- POST /api/v1/conversations/{id}/messages ------------------------------------------------


def test_reply_and_note(me, agent, inbox):
    conversation = a_conversation(inbox)
    path = f"/api/v1/conversations/{conversation.pk}/messages"

    reply = me.post(path, {"text": "Shipped today", "status": "pending"})
    note = me.post(path, {"kind": "note", "text": "@nobody double-check"})
    html = me.post(path, {"kind": "reply", "html": "<p>Bye <b>now</b><script>x</script></p>"})

    assert (reply.status_code, note.status_code, html.status_code) == (201, 201, 201)
    assert reply.json()["direction"] == "outbound"
    assert reply.json()["delivery_status"] == "queued"
    assert reply.json()["author_agent_id"] == agent.pk
    assert note.json()["direction"] == "note"
    assert html.json()["html"] == "<p>Bye <b>now</b></p>"
    assert html.json()["text"] == "Bye now"
    conversation.refresh_from_db()
    assert conversation.status == "pending"
    assert conversation.message_count == 4
    assert conversation.unread_count == 0 and conversation.waiting_since is None


@pytest.mark.parametrize(
    "payload",
    [
        {"text": ""},
        {"text": "   "},
        {"kind": "sms", "text": "hi"},
        {"kind": "note", "text": "hi", "status": "solved"},
        {"text": "hi", "status": "archived"},
        {"text": "hi", "to": "someone@else.com"},
        {"text": "x" * 100_001},
        {"text": ["hi"]},
    ],
)
def test_a_refused_reply_stores_nothing(me, inbox, payload):
    conversation = a_conversation(inbox)
    before = stored()

    response = me.post(f"/api/v1/conversations/{conversation.pk}/messages", payload)

    assert response.status_code == 422, response.content
    assert response.json()["detail"]
    assert stored() == before
    assert Conversation.objects.get().status == "new"


def test_a_reply_to_a_merged_conversation_is_a_conflict(me, agent, inbox):
    source = a_conversation(inbox)
    target = Conversation.objects.create(
        inbox=inbox, customer=source.customer, last_message_at=timezone.now()
    )
    actions.merge_conversations(source=source, target=target, actor=agent)
    before = stored()

    response = me.post(f"/api/v1/conversations/{source.pk}/messages", {"text": "hello"})

    assert response.status_code == 409
    assert f"#{target.pk}" in response.json()["detail"]
    assert stored() == before


# --- GET /api/v1/customers/{id} --------------------------------------------------------------


def test_customer_detail(me, agent, inbox):
    submit(me, inbox, customer={"name": "Ana", "email": "ana@example.com",
                                "phone": "+1 415 555 0100"})  # fmt: skip
    customer = Customer.objects.get()
    hidden = InboxFactory(store=inbox.store)
    a_conversation(hidden, "elsewhere", "ana@example.com")

    response = me.get(f"/api/v1/customers/{customer.pk}")

    assert response.status_code == 200
    data = response.json()
    assert (data["id"], data["name"], data["email"], data["phone"]) == (
        customer.pk, "Ana", "ana@example.com", "+14155550100",
    )  # fmt: skip
    assert data["identities"] == [
        {"kind": "email", "value": "ana@example.com"},
        {"kind": "phone", "value": "+14155550100"},
    ]
    conversation = Conversation.objects.get(inbox=inbox)
    assert [(c["id"], c["channel"], c["inbox_id"]) for c in data["conversations"]] == [
        (conversation.pk, "api", inbox.pk)
    ]
    assert data["merged_into_id"] is None


# --- scoping ---------------------------------------------------------------------------------


def test_an_agent_outside_an_inbox_gets_404_on_every_call(client, inbox, agent, outsider):
    conversation = a_conversation(inbox)
    stranger = caller_for(client, outsider)
    before = stored()
    snapshot = Conversation.objects.values().get()
    conversation_path = f"/api/v1/conversations/{conversation.pk}"

    answers = [
        stranger.get(conversation_path),
        stranger.patch(conversation_path, {"status": "solved"}),
        stranger.patch(conversation_path, {"tags": ["x"]}),
        stranger.post(f"{conversation_path}/messages", {"text": "hi"}),
        stranger.post(f"{conversation_path}/messages", {"kind": "note", "text": "hi"}),
        stranger.get(f"/api/v1/customers/{conversation.customer_id}"),
        stranger.post("/api/v1/messages", body(inbox, "z")),
    ]

    for response in answers:
        assert response.status_code == 404, response.content
        assert "not found" in response.json()["detail"]
    assert stranger.get("/api/v1/conversations").json() == {"items": [], "next_cursor": None}
    assert ids(stranger, inbox=inbox.pk) == []
    assert stranger.get("/api/v1/inboxes").json() == []
    batch = stranger.post("/api/v1/messages/batch", {"messages": [body(inbox, "z")]}).json()
    assert batch["results"][0]["status"] == "error"
    assert batch["results"][0]["error"] == f"inbox {inbox.pk} not found"
    assert stored() == before
    assert Conversation.objects.values().get() == snapshot


def test_a_foreign_id_and_a_missing_id_answer_alike(client, inbox, outsider):
    conversation = a_conversation(inbox)
    stranger = caller_for(client, outsider)

    foreign = stranger.get(f"/api/v1/conversations/{conversation.pk}")
    missing = stranger.get(f"/api/v1/conversations/{conversation.pk + 1000}")

    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["detail"].replace(str(conversation.pk), "N") == missing.json()[
        "detail"
    ].replace(str(conversation.pk + 1000), "N")


def test_a_team_member_sees_the_teams_inboxes(client, inbox, outsider):
    team = TeamFactory()
    team.members.add(outsider)
    inbox.teams.add(team)
    conversation = a_conversation(inbox)
    member = caller_for(client, outsider)

    assert [i["id"] for i in member.get("/api/v1/inboxes").json()] == [inbox.pk]
    assert member.get(f"/api/v1/conversations/{conversation.pk}").status_code == 200
    assert ids(member) == [conversation.pk]


@pytest.mark.parametrize("admin_kind", ["role", "superuser"])
def test_an_admin_sees_everything(client, inbox, admin_kind):
    other = InboxFactory(store=StoreFactory())
    conversation = a_conversation(other)
    person = (
        AgentFactory(role=Role.ADMIN) if admin_kind == "role" else AgentFactory(is_superuser=True)
    )
    admin = caller_for(client, person)

    assert {i["id"] for i in admin.get("/api/v1/inboxes").json()} == {inbox.pk, other.pk}
    assert ids(admin) == [conversation.pk]
    assert admin.get(f"/api/v1/conversations/{conversation.pk}").status_code == 200
    assert admin.get(f"/api/v1/customers/{conversation.customer_id}").status_code == 200
    assert submit(admin, other, "by-admin").status_code == 202


# --- authentication --------------------------------------------------------------------------

CALLS = [
    ("get", "/api/v1/conversations", None),
    ("get", "/api/v1/conversations/1", None),
    ("patch", "/api/v1/conversations/1", {"status": "solved"}),
    ("post", "/api/v1/conversations/1/messages", {"text": "hi"}),
    ("get", "/api/v1/inboxes", None),
    ("get", "/api/v1/customers/1", None),
    ("post", "/api/v1/messages", None),
    ("post", "/api/v1/messages/batch", None),
]


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Bearer nope", "Bearer kefu_wrong", "Token abc", "Basic eA=="],
)
def test_without_a_valid_token_every_endpoint_is_401(client, inbox, agent, header):
    conversation = a_conversation(inbox)
    headers = {"Authorization": header} if header is not None else {}
    before = stored()

    for method, path, payload in CALLS:
        path = path.replace("/1", f"/{conversation.pk}")
        if payload is None and method == "post":
            payload = body(inbox, "new")
        if path.endswith("batch"):
            payload = {"messages": [body(inbox, "new")]}
        kwargs = {"headers": headers}
        if payload is not None:
            kwargs.update(data=json.dumps(payload), content_type="application/json")
        response = getattr(client, method)(path, **kwargs)
        assert response.status_code == 401, (method, path, response.content)
        assert response.json()["detail"]
    assert stored() == before


def test_a_revoked_token_stops_working_at_once(client, agent, inbox):
    token, raw = create_token(user=agent, name="ci")
    caller = Caller(client, raw)
    assert caller.get("/api/v1/inboxes").status_code == 200

    revoke_token(token=token, actor=agent)

    assert caller.get("/api/v1/inboxes").status_code == 401
    assert submit(caller, inbox).status_code == 401
    assert stored() == NOTHING


def test_a_token_of_a_deactivated_user_is_refused(client, agent, inbox):
    _, raw = create_token(user=agent, name="ci")
    agent.is_active = False
    agent.save()
    assert Caller(client, raw).get("/api/v1/inboxes").status_code == 401


def test_the_session_reads_without_csrf_but_writes_only_with_it(agent, inbox):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(agent)
    conversation = a_conversation(inbox)

    assert browser.get("/api/v1/inboxes").status_code == 200
    assert browser.get(f"/api/v1/conversations/{conversation.pk}").status_code == 200
    refused = [
        browser.post("/api/v1/messages", json.dumps(body(inbox, "x")),
                     content_type="application/json"),
        browser.patch(f"/api/v1/conversations/{conversation.pk}", json.dumps({"status": "solved"}),
                      content_type="application/json"),
        browser.post(f"/api/v1/conversations/{conversation.pk}/messages",
                     json.dumps({"text": "hi"}), content_type="application/json"),
    ]  # fmt: skip
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert {r.json()["detail"] for r in refused} == {
        "CSRF check failed: send the X-CSRFToken header with a write"
    }
    assert Message.objects.count() == 1
    assert Conversation.objects.get().status == "new"

    browser.get("/admin/login/")  # sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    accepted = browser.post(
        "/api/v1/messages",
        json.dumps(body(inbox, "x")),
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert accepted.status_code == 202
    assert Message.objects.count() == 2


def test_an_anonymous_session_is_401(inbox):
    assert Client().get("/api/v1/inboxes").status_code == 401


# --- health and schema -----------------------------------------------------------------------


def test_healthz_answers_200_without_authentication(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_the_openapi_schema_lists_every_endpoint(client):
    schema = client.get("/api/v1/openapi.json").json()
    assert set(schema["paths"]) >= {
        "/api/v1/messages",
        "/api/v1/messages/batch",
        "/api/v1/conversations",
        "/api/v1/conversations/{conversation_id}",
        "/api/v1/conversations/{conversation_id}/messages",
        "/api/v1/inboxes",
        "/api/v1/customers/{customer_id}",
    }


# --- concurrent submissions (the combined path a threaded server takes) ----------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_are_each_stored_once_with_their_own_ids():
    import threading

    from django.db import connection

    inbox = InboxFactory()
    agent = AgentFactory()
    InboxMembership.objects.create(inbox=inbox, agent=agent)
    raw = create_token(user=agent, name="t")[1]
    payloads = [body(inbox, f"m{i}", customer={"email": f"c{i % 3}@example.com"}) for i in range(9)]
    payloads.append(body(inbox, "m0", customer={"email": "c0@example.com"}))  # a retry
    barrier = threading.Barrier(len(payloads))
    answers: dict[int, tuple[int, dict]] = {}

    def send(n: int) -> None:
        try:
            barrier.wait()
            response = Caller(Client(), raw).post("/api/v1/messages", payloads[n])
            answers[n] = (response.status_code, response.json())
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert {status for status, _ in answers.values()} == {202}
    assert Message.objects.count() == 9
    assert Customer.objects.count() == 3 == Conversation.objects.count()
    for n in range(9):
        message = Message.objects.get(external_id=f"m{n}")
        assert answers[n][1]["message_id"] == message.pk
        assert answers[n][1]["conversation_id"] == message.conversation_id
        assert message.conversation.customer.email == f"c{n % 3}@example.com"
    assert answers[9][1]["message_id"] == answers[0][1]["message_id"]
    assert sorted([answers[0][1]["created"], answers[9][1]["created"]]) == [False, True]
    assert sorted(Conversation.objects.values_list("message_count", flat=True)) == [3, 3, 3]


# --- no query per row ------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [1, 12])
def test_a_list_page_costs_the_same_queries_whatever_its_length(
    me, agent, inbox, rows, django_assert_num_queries
):
    for i in range(rows):
        conversation = a_conversation(inbox, f"m{i}", f"c{i}@example.com")
        actions.tag(conversation=conversation, actor=agent, names=["vip", f"t{i}"])
    me.get("/api/v1/inboxes")  # token memoized

    # the caller's inbox ids, the page, the page's tags
    with django_assert_num_queries(3):
        response = me.get("/api/v1/conversations")
    assert len(response.json()["items"]) == rows


@pytest.mark.parametrize("messages", [1, 12])
def test_a_detail_costs_the_same_queries_whatever_its_length(
    me, agent, inbox, messages, django_assert_num_queries
):
    conversation = a_conversation(inbox)
    for i in range(messages - 1):
        actions.add_note(conversation=conversation, actor=agent, text=f"note {i}")
    me.get("/api/v1/inboxes")

    # inbox ids, the conversation with its relations, its tags, its messages, their attachments
    with django_assert_num_queries(5):
        response = me.get(f"/api/v1/conversations/{conversation.pk}")
    assert len(response.json()["messages"]) == messages


def test_an_unexpected_error_is_a_json_500_without_internals(me, inbox, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(actions, "receive_message", broken)

    response = submit(me, inbox)

    assert response.status_code == 500
    assert response.json() == {"detail": "internal error; it has been logged, please try again"}
    assert "secret internals" not in response.content.decode()
    assert "secret internals" in caplog.text
