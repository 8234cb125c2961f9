"""REST API v1: every endpoint, scoping (404 for foreign ids), and bad input storing nothing."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from kefu.accounts.actions import create_token, revoke_token
from kefu.accounts.models import ApiToken, Role
from kefu.conversations.models import (
    Conversation,
    ConversationEvent,
    InboxKind,
    InboxMembership,
    Message,
)
from kefu.customers.models import Customer
from tests.factories import AgentFactory, InboxFactory

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


def submit(api, inbox, external_id="m-1", **overrides):
    response = api.post("/api/v1/messages", body(inbox, external_id, **overrides))
    return response


def stored():
    return (Message.objects.count(), Conversation.objects.count(), Customer.objects.count())


# --- inbound -------------------------------------------------------------------------------


def test_submit_answers_202_and_a_retry_gets_the_same_ids(api, inbox):
    first = submit(api, inbox)
    retry = submit(api, inbox)

    assert first.status_code == 202
    assert first.json()["created"] is True
    assert retry.status_code == 202
    assert retry.json() == {**first.json(), "created": False}
    assert stored() == (1, 1, 1)


def test_batch_gives_a_result_per_item(api, inbox):
    items = [
        body(inbox, "a"),
        body(inbox, "b", customer={"phone": "not a phone"}),
        body(inbox, "a"),
        body(inbox, "c", customer={"email": "ben@example.com"}),
    ]
    response = api.post("/api/v1/messages/batch", {"messages": items})

    assert response.status_code == 202
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "error", "duplicate", "created"]
    assert results[2]["message_id"] == results[0]["message_id"]
    assert "phone" in results[1]["error"]
    assert stored() == (2, 2, 2)


def test_batch_of_more_than_500_is_refused(api, inbox):
    items = [body(inbox, f"m{i}") for i in range(501)]
    response = api.post("/api/v1/messages/batch", {"messages": items})
    assert response.status_code == 422
    assert stored() == (0, 0, 0)


def test_batch_item_for_a_foreign_inbox_fails_alone(api, inbox):
    foreign = InboxFactory()
    response = api.post(
        "/api/v1/messages/batch", {"messages": [body(inbox, "a"), body(foreign, "b")]}
    )
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "error"]
    assert "not found" in results[1]["error"]
    assert Message.objects.filter(inbox=foreign).count() == 0


@pytest.mark.parametrize(
    ("payload_change", "status"),
    [
        ({"external_id": ""}, 422),
        ({"external_id": "x" * 256}, 422),
        ({"customer": {"email": "not-an-email"}}, 422),
        ({"customer": {"phone": "12"}}, 422),
        ({"customer": {}}, 422),
        ({"text": ""}, 422),
        ({"surprise": "field"}, 422),
        ({"inbox_id": "one"}, 422),
        ({"sent_at": "yesterday"}, 422),
    ],
)
def test_bad_payloads_are_refused_with_a_message_and_store_nothing(
    api, inbox, payload_change, status
):
    response = api.post("/api/v1/messages", body(inbox) | payload_change)

    assert response.status_code == status
    assert response.json()["detail"]
    assert stored() == (0, 0, 0)


def test_missing_fields_and_broken_json(api, inbox, client, api_token):
    missing = api.post("/api/v1/messages", {"inbox_id": inbox.pk})
    assert missing.status_code == 422
    assert "customer" in missing.json()["detail"]

    broken = client.post(
        "/api/v1/messages",
        "{not json",
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_token}"},
    )
    assert broken.status_code in (400, 422)
    assert broken.json()["detail"]
    assert stored() == (0, 0, 0)


def test_only_api_inboxes_take_messages(api, agent):
    email_inbox = InboxFactory(kind=InboxKind.EMAIL)
    InboxMembership.objects.create(inbox=email_inbox, agent=agent)
    response = submit(api, email_inbox)
    assert response.status_code == 422
    assert "email inbox" in response.json()["detail"]


# --- auth and scoping ----------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer kefu_wrong", "Token abc"])
def test_without_a_valid_token_everything_is_401(client, inbox, header):
    headers = {"Authorization": header} if header else {}
    for method, path in [("get", "/api/v1/conversations"), ("get", "/api/v1/inboxes")]:
        response = getattr(client, method)(path, headers=headers)
        assert response.status_code == 401
        assert response.json()["detail"]


def test_a_revoked_token_stops_working(client, agent, inbox):
    token, raw = create_token(user=agent, name="t")
    headers = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/inboxes", headers=headers).status_code == 200
    revoke_token(token=token, actor=agent)
    assert client.get("/api/v1/inboxes", headers=headers).status_code == 401


def test_tokens_are_stored_hashed(agent):
    _, raw = create_token(user=agent, name="t")
    row = ApiToken.objects.get()
    assert raw not in (row.key_hash, row.prefix)
    assert raw.startswith(row.prefix)


def test_an_agent_outside_an_inbox_gets_404_everywhere(api, inbox, client):
    conversation_id = submit(api, inbox).json()["conversation_id"]
    customer_id = Conversation.objects.get().customer_id
    outsider = AgentFactory()
    raw = create_token(user=outsider, name="t")[1]
    headers = {"Authorization": f"Bearer {raw}"}

    def call(method, path, payload=None):
        kwargs = {"headers": headers}
        if payload is not None:
            kwargs.update(data=json.dumps(payload), content_type="application/json")
        return getattr(client, method)(path, **kwargs)

    assert call("get", f"/api/v1/conversations/{conversation_id}").status_code == 404
    assert (
        call("patch", f"/api/v1/conversations/{conversation_id}", {"status": "solved"}).status_code
        == 404
    )
    assert (
        call("post", f"/api/v1/conversations/{conversation_id}/messages", {"text": "x"}).status_code
        == 404
    )
    assert call("get", f"/api/v1/customers/{customer_id}").status_code == 404
    assert call("post", "/api/v1/messages", body(inbox, "z")).status_code == 404
    listing = call("get", "/api/v1/conversations").json()
    assert listing == {"items": [], "next_cursor": None}
    assert call("get", "/api/v1/inboxes").json() == []
    assert Conversation.objects.get().status == "new"
    assert Message.objects.count() == 1


def test_team_membership_grants_an_inbox(inbox, client):
    from tests.factories import TeamFactory

    member = AgentFactory()
    team = TeamFactory()
    team.members.add(member)
    inbox.teams.add(team)
    raw = create_token(user=member, name="t")[1]
    response = client.get("/api/v1/inboxes", headers={"Authorization": f"Bearer {raw}"})
    assert [i["id"] for i in response.json()] == [inbox.pk]


def test_an_admin_sees_every_inbox(inbox, client):
    InboxFactory()
    admin = AgentFactory(role=Role.ADMIN)
    raw = create_token(user=admin, name="t")[1]
    response = client.get("/api/v1/inboxes", headers={"Authorization": f"Bearer {raw}"})
    assert len(response.json()) == 2


def test_the_session_needs_csrf_for_writes(agent, inbox):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(agent)
    assert browser.get("/api/v1/inboxes").status_code == 200
    response = browser.post(
        "/api/v1/messages", json.dumps(body(inbox)), content_type="application/json"
    )
    assert response.status_code == 403
    assert Message.objects.count() == 0


# --- conversations -------------------------------------------------------------------------


def test_list_filters(api, inbox, agent):
    for i in range(3):
        submit(api, inbox, f"m{i}", customer={"email": f"c{i}@example.com"})
    first = Conversation.objects.order_by("pk").first()
    api.patch(
        f"/api/v1/conversations/{first.pk}",
        {"status": "pending", "priority": "high", "assignee_id": agent.pk, "tags": ["VIP"]},
    )

    def ids(**params):
        return [c["id"] for c in api.get("/api/v1/conversations", **params).json()["items"]]

    assert ids(status="pending") == [first.pk]
    assert len(ids(status="new")) == 2
    assert ids(assignee="me") == [first.pk]
    assert len(ids(assignee="none")) == 2
    assert ids(assignee=str(agent.pk)) == [first.pk]
    assert ids(priority="high") == [first.pk]
    assert ids(tag="vip") == [first.pk]
    assert len(ids(inbox=inbox.pk)) == 3
    bad = api.get("/api/v1/conversations", assignee="someone")
    assert bad.status_code == 422


def test_keyset_pages_cover_everything_once(api, inbox):
    for i in range(7):
        submit(api, inbox, f"m{i}", customer={"email": f"c{i}@example.com"})
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = api.get("/api/v1/conversations", **params).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(Conversation.objects.values_list("pk", flat=True))
    assert len(seen) == len(set(seen)) == 7


@pytest.mark.parametrize("params", [{"cursor": "garbage"}, {"limit": 0}, {"limit": 201}])
def test_bad_paging_is_422(api, params):
    response = api.get("/api/v1/conversations", **params)
    assert response.status_code == 422
    assert response.json()["detail"]


def test_detail_patch_reply_and_note(api, inbox, agent):
    conversation_id = submit(api, inbox).json()["conversation_id"]

    detail = api.get(f"/api/v1/conversations/{conversation_id}").json()
    assert detail["number"] == f"#{conversation_id}"
    assert [m["text"] for m in detail["messages"]] == ["Where is my order #1042?"]

    patched = api.patch(
        f"/api/v1/conversations/{conversation_id}",
        {"priority": "urgent", "tags": ["refund", "vip"]},
    ).json()
    assert patched["priority"] == "urgent" and patched["tags"] == ["refund", "vip"]
    patched = api.patch(f"/api/v1/conversations/{conversation_id}", {"tags": ["vip"]}).json()
    assert patched["tags"] == ["vip"]

    reply = api.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        {"kind": "reply", "text": "Shipped today", "status": "pending"},
    )
    assert reply.status_code == 201
    assert reply.json()["direction"] == "outbound"
    note = api.post(
        f"/api/v1/conversations/{conversation_id}/messages", {"kind": "note", "text": "VIP"}
    )
    assert note.status_code == 201 and note.json()["direction"] == "note"

    detail = api.get(f"/api/v1/conversations/{conversation_id}").json()
    assert detail["status"] == "pending"
    assert [m["direction"] for m in detail["messages"]] == ["inbound", "outbound", "note"]
    events = ConversationEvent.objects.filter(conversation_id=conversation_id)
    assert events.filter(actor=agent).count() >= 4


def test_patch_refuses_bad_values_and_changes_nothing(api, inbox):
    conversation_id = submit(api, inbox).json()["conversation_id"]
    for change in ({"status": "archived"}, {"priority": "asap"}, {"assignee_id": 99999}):
        response = api.patch(f"/api/v1/conversations/{conversation_id}", change)
        assert response.status_code == 422, change
    conversation = Conversation.objects.get()
    assert (conversation.status, conversation.priority, conversation.assignee_id) == (
        "new",
        "normal",
        None,
    )


def test_assigning_someone_without_access_is_refused(api, inbox):
    stranger = AgentFactory()
    conversation_id = submit(api, inbox).json()["conversation_id"]
    response = api.patch(f"/api/v1/conversations/{conversation_id}", {"assignee_id": stranger.pk})
    assert response.status_code == 422
    assert Conversation.objects.get().assignee_id is None


def test_customer_detail_lists_identities_and_conversations(api, inbox):
    submit(api, inbox, customer={"email": "ana@example.com", "phone": "+1 415 555 0100"})
    customer = Customer.objects.get()
    data = api.get(f"/api/v1/customers/{customer.pk}").json()
    assert {(i["kind"], i["value"]) for i in data["identities"]} == {
        ("email", "ana@example.com"),
        ("phone", "+14155550100"),
    }
    assert [c["channel"] for c in data["conversations"]] == ["api"]


def test_openapi_and_healthz(client):
    assert client.get("/api/v1/openapi.json").status_code == 200
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}


def test_a_deactivated_user_is_refused_once_forgotten(client, agent, api_token):
    from kefu.accounts.actions import forget_user_tokens

    headers = {"Authorization": f"Bearer {api_token}"}
    assert client.get("/api/v1/inboxes", headers=headers).status_code == 200
    agent.is_active = False
    agent.save()
    forget_user_tokens(agent)
    assert client.get("/api/v1/inboxes", headers=headers).status_code == 401


def test_patch_a_customer_changes_only_the_fields_sent(api, inbox):
    from kefu.conversations.inbound import InboundMessage
    from kefu.conversations.pipeline import receive_message

    customer = receive_message(
        inbox=inbox,
        message=InboundMessage(
            external_id="p-1", identities=[("email", "p@example.com")], text="hi"
        ),
    ).conversation.customer

    changed = api.patch(
        f"/api/v1/customers/{customer.pk}", {"notes": "Prefers WhatsApp", "tags": ["VIP"]}
    )
    refused = api.patch(f"/api/v1/customers/{customer.pk}", {"email": "new@example.com"})

    assert changed.status_code == 200
    assert (changed.json()["tags"], changed.json()["name"]) == (["vip"], customer.name)
    assert refused.status_code == 422
    customer.refresh_from_db()
    assert customer.notes == "Prefers WhatsApp" and customer.email == "p@example.com"


def test_erasing_a_customer_is_for_admins_and_leaves_no_personal_data(api, agent, inbox):
    from kefu.accounts.actions import forget_user_tokens
    from kefu.accounts.models import Role
    from kefu.conversations.inbound import InboundMessage
    from kefu.conversations.pipeline import receive_message

    customer = receive_message(
        inbox=inbox,
        message=InboundMessage(
            external_id="e-1",
            identities=[("email", "erase@example.com")],
            text="I live at 12 Rue Oberkampf",
            customer_name="Claire",
        ),
    ).conversation.customer

    refused = api.post(f"/api/v1/customers/{customer.pk}/erase", {})
    agent.role = Role.ADMIN
    agent.save()
    forget_user_tokens(agent)  # a token's agent is remembered for a moment
    erased = api.post(f"/api/v1/customers/{customer.pk}/erase", {})

    assert refused.status_code == 403
    assert erased.status_code == 200, erased.content
    body = erased.json()
    assert body["email"] == "" and body["identities"] == [] and "Claire" not in str(body)
    detail = api.get(f"/api/v1/conversations/{body['conversations'][0]['id']}").json()
    assert "Oberkampf" not in str(detail)
