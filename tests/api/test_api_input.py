"""Input that used to crash the API (a 500) instead of being cleaned or refused.

NUL characters (PostgreSQL text refuses them), dates before 1970 (the threading window's
arithmetic overflowed), digits int() cannot read; and a team that could not be cleared.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kefu.conversations import actions
from kefu.conversations.models import Conversation, Message
from kefu.customers.models import Identity
from tests.api.test_core_api import NOTHING, a_conversation, body, caller_for, stored, submit
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def me(client, agent):
    return caller_for(client, agent)


NUL = "\x00"


# --- NUL characters ----------------------------------------------------------------------------


def test_a_submission_with_nul_characters_is_stored_without_them(me, inbox):
    response = submit(
        me,
        inbox,
        f"m-1{NUL}",
        customer={
            "name": f"A{NUL}na",
            "external_id": f"shop{NUL}-7",
            "phone": f"+1 415{NUL} 555 0100",
        },
        subject=f"Or{NUL}der",
        text=f"Where{NUL} is it?",
        html=f"<p>Where{NUL} is it?</p>",
        thread_key=f"chat{NUL}",
        references=[f"x{NUL}"],
    )

    assert response.status_code == 202, response.content
    message = Message.objects.get()
    assert (message.external_id, message.subject, message.text) == ("m-1", "Order", "Where is it?")
    assert message.html == "<p>Where is it?</p>"
    assert sorted(Identity.objects.values_list("value", flat=True)) == ["+14155550100", "shop-7"]
    assert Conversation.objects.get().thread_key == "chat"

    again = submit(me, inbox, f"m-1{NUL}", text="retry")
    assert again.json() == {**response.json(), "created": False}


def test_a_batch_item_with_nul_characters_is_stored_without_them(me, inbox):
    response = me.post(
        "/api/v1/messages/batch",
        {"messages": [body(inbox, f"b{NUL}-1", text=f"a{NUL}b"), body(inbox, NUL)]},
    )

    assert response.status_code == 202
    first, second = response.json()["results"]
    assert first["status"] == "created"
    assert second["status"] == "error" and "external_id" in second["error"]
    assert list(Message.objects.values_list("external_id", "text")) == [("b-1", "ab")]


def test_replies_notes_tags_and_the_tag_filter_take_nul_characters(me, inbox):
    conversation = a_conversation(inbox)
    path = f"/api/v1/conversations/{conversation.pk}"

    reply = me.post(f"{path}/messages", {"text": f"On{NUL} its way"})
    note = me.post(f"{path}/messages", {"kind": "note", "text": f"che{NUL}ck"})
    patched = me.patch(path, {"tags": [f"V{NUL}IP"]})
    listed = me.get("/api/v1/conversations", tag=f"v{NUL}ip")

    assert (reply.status_code, reply.json()["text"]) == (201, "On its way")
    assert (note.status_code, note.json()["text"]) == (201, "check")
    assert (patched.status_code, patched.json()["tags"]) == (200, ["vip"])
    assert [c["id"] for c in listed.json()["items"]] == [conversation.pk]


def test_a_reply_of_nothing_but_nul_is_refused(me, inbox):
    conversation = a_conversation(inbox)
    response = me.post(f"/api/v1/conversations/{conversation.pk}/messages", {"text": NUL})
    assert response.status_code == 422
    assert response.json()["field"] == "text"
    assert Message.objects.count() == 1


# --- dates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent_at", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00", "1969-12-31T23:59:59+00:00"]
)
def test_a_sent_at_before_1970_is_422_and_stores_nothing(me, inbox, sent_at):
    response = submit(me, inbox, sent_at=sent_at)

    assert response.status_code == 422, response.content
    assert response.json() == {"detail": "sent_at must be after 1970-01-01", "field": "sent_at"}
    assert stored() == NOTHING


def test_a_batch_item_dated_before_1970_fails_alone(me, inbox):
    response = me.post(
        "/api/v1/messages/batch",
        {"messages": [body(inbox, "old", sent_at="0001-01-01T00:00:00Z"), body(inbox, "new")]},
    )

    assert response.status_code == 202
    old, new = response.json()["results"]
    assert (old["status"], old["error"]) == ("error", "sent_at must be after 1970-01-01")
    assert new["status"] == "created"
    assert list(Message.objects.values_list("external_id", flat=True)) == ["new"]


# --- list parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize("assignee", ["²", "1²", "-1", "1.0", " 1"])
def test_an_assignee_filter_that_is_not_a_plain_id_is_422(me, inbox, assignee):
    a_conversation(inbox)
    response = me.get("/api/v1/conversations", assignee=assignee)
    assert response.status_code == 422, response.content
    assert response.json()["field"] == "assignee"


def test_the_tag_filter_reads_a_tag_the_way_it_is_stored(me, agent, inbox):
    tagged = a_conversation(inbox)
    a_conversation(inbox, "m-2", "bob@example.com")
    actions.tag(conversation=tagged, actor=agent, names=["late delivery"])

    response = me.get("/api/v1/conversations", tag="  Late   DELIVERY ")

    assert [c["id"] for c in response.json()["items"]] == [tagged.pk]


# --- PATCH team ---------------------------------------------------------------------------------


def test_patch_team_id_null_clears_the_team_and_leaving_it_out_keeps_it(me, agent, inbox):
    conversation = a_conversation(inbox)
    team = TeamFactory()
    path = f"/api/v1/conversations/{conversation.pk}"
    me.patch(path, {"team_id": team.pk, "assignee_id": agent.pk})

    kept = me.patch(path, {"assignee_id": None}).json()
    cleared = me.patch(path, {"team_id": None}).json()

    assert (kept["assignee_id"], kept["team_id"]) == (None, team.pk)
    assert (cleared["assignee_id"], cleared["team_id"]) == (None, None)
    assert Conversation.objects.get().team_id is None


# --- request size ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/messages", "/api/v1/messages/batch"])
def test_a_body_over_the_request_limit_is_413_and_stores_nothing(me, inbox, settings, path):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    payload = body(inbox, text="x" * 5000)
    if path.endswith("batch"):
        payload = {"messages": [payload]}

    response = me.post(path, payload)

    assert response.status_code == 413
    assert response.json() == {
        "detail": "request body larger than 4096 bytes (KEFU_MAX_REQUEST_BYTES)"
    }
    assert stored() == NOTHING


# --- times without a zone ----------------------------------------------------------------------


def test_an_updated_since_without_a_zone_is_utc_not_the_servers_zone(me, inbox, settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    conversation = a_conversation(inbox)
    Conversation.objects.filter(pk=conversation.pk).update(
        updated_at=datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    )

    at = me.get("/api/v1/conversations", updated_since="2026-01-01T10:00:00").json()
    after = me.get("/api/v1/conversations", updated_since="2026-01-01T10:00:01").json()

    assert [c["id"] for c in at["items"]] == [conversation.pk]
    assert after["items"] == []
