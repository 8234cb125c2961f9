"""The workspace pages and actions: scoped reads, every change through the actions, escaping."""

from __future__ import annotations

import pytest
from django.urls import reverse

from kefu.conversations.inbound import InboundMessage
from kefu.conversations.models import (
    Conversation,
    ConversationMerge,
    Direction,
    InboxMembership,
    Message,
)
from kefu.conversations.pipeline import receive_message
from tests.factories import AgentFactory, InboxFactory

pytestmark = pytest.mark.django_db


def inbound(inbox, text="Where is my order #1042?", who="ana@example.com", html="", ref="m"):
    return receive_message(
        inbox=inbox,
        message=InboundMessage(
            external_id=f"{ref}-{Message.objects.count()}",
            identities=[("email", who)],
            customer_name="Ana",
            text=text,
            html=html,
        ),
    ).conversation


@pytest.fixture
def signed_in(client, agent):
    client.force_login(agent)
    return client


def test_the_inbox_lists_only_conversations_the_agent_may_see(signed_in, inbox):
    mine = inbound(inbox, "Parcel late")
    foreign = inbound(InboxFactory(), "Secret other team", who="bo@example.com")

    page = signed_in.get("/").content.decode()

    assert f"#{mine.pk}" in page and "Parcel late" in page
    assert "Secret other team" not in page and f"#{foreign.pk}<" not in page


def test_views_mine_and_unassigned_filter_the_list(signed_in, agent, inbox):
    from kefu.conversations import actions

    taken = inbound(inbox, "Taken one", who="a@example.com")
    free = inbound(inbox, "Free one", who="b@example.com")
    actions.assign(conversation=taken, actor=agent, assignee=agent)

    mine = signed_in.get("/", {"view": "mine"}).content.decode()
    unassigned = signed_in.get("/list/", {"view": "unassigned"}).content.decode()

    assert "Taken one" in mine and "Free one" not in mine
    assert "Free one" in unassigned and "Taken one" not in unassigned
    assert free.pk != taken.pk


@pytest.mark.parametrize("sort", ["activity", "waiting"])
def test_keyset_pages_cover_every_conversation_once(agent, inbox, sort):
    from kefu.workspace import selectors

    for n in range(7):
        inbound(inbox, f"question {n}", who=f"c{n}@example.com")

    seen, cursor = [], ""
    while True:
        query = selectors.ListQuery(view="all", sort=sort, cursor=cursor)
        page = selectors.inbox_page(agent, query, size=3)
        seen += [c.pk for c in page.rows]
        cursor = page.next_cursor
        if not cursor:
            break
    assert sorted(seen) == sorted(Conversation.objects.values_list("pk", flat=True))
    assert len(seen) == len(set(seen)) == 7


def test_an_outsider_gets_404_on_every_page_fragment_and_action(client, inbox):
    conversation = inbound(inbox, "Hidden", html="<p>Hidden</p>")
    message = conversation.messages.get()
    client.force_login(AgentFactory())
    pk = conversation.pk
    gets = [f"/c/{pk}/", f"/c/{pk}/timeline/", f"/m/{message.pk}/html/"]
    posts = {
        f"/c/{pk}/reply/": {"text": "hi"},
        f"/c/{pk}/assign/": {"assignee": "me"},
        f"/c/{pk}/status/": {"status": "solved"},
        f"/c/{pk}/priority/": {"priority": "urgent"},
        f"/c/{pk}/tags/": {"tags": "x"},
        f"/c/{pk}/merge/": {"into": str(pk)},
    }
    for path in gets:
        assert client.get(path).status_code == 404, path
    for path, data in posts.items():
        assert client.post(path, data).status_code == 404, path
    conversation.refresh_from_db()
    assert (conversation.status, conversation.priority, conversation.assignee_id) == (
        "new",
        "normal",
        None,
    )
    assert conversation.messages.count() == 1


def test_reply_and_note_go_through_the_actions(signed_in, agent, inbox):
    conversation = inbound(inbox)

    reply = signed_in.post(f"/c/{conversation.pk}/reply/", {"text": "Shipped today", "then": ""})
    note = signed_in.post(
        f"/c/{conversation.pk}/reply/", {"text": "VIP, be kind", "kind": Direction.NOTE}
    )

    assert reply.status_code == note.status_code == 302
    sent = list(conversation.messages.order_by("id").values_list("direction", "text"))
    assert sent[1:] == [("outbound", "Shipped today"), ("note", "VIP, be kind")]
    page = signed_in.get(f"/c/{conversation.pk}/").content.decode()
    assert "Shipped today" in page and "VIP, be kind" in page


def test_an_empty_reply_is_refused_with_a_message_and_stores_nothing(signed_in, inbox):
    conversation = inbound(inbox)
    response = signed_in.post(f"/c/{conversation.pk}/reply/", {"text": "  "})
    assert response.status_code in (400, 422)
    assert 'role="alert"' in response.content.decode()
    assert conversation.messages.count() == 1


def test_assign_to_a_colleague_and_not_to_someone_outside_the_inbox(signed_in, inbox):
    conversation = inbound(inbox)
    colleague = AgentFactory(display_name="Bea")
    InboxMembership.objects.create(inbox=inbox, agent=colleague)
    stranger = AgentFactory()

    ok = signed_in.post(f"/c/{conversation.pk}/assign/", {"assignee": colleague.pk})
    refused = signed_in.post(f"/c/{conversation.pk}/assign/", {"assignee": stranger.pk})

    assert ok.status_code == 302 and refused.status_code == 400
    conversation.refresh_from_db()
    assert conversation.assignee_id == colleague.pk


def test_status_priority_tags_and_snooze(signed_in, inbox):
    conversation = inbound(inbox)
    base = f"/c/{conversation.pk}"
    signed_in.post(f"{base}/priority/", {"priority": "urgent"})
    signed_in.post(f"{base}/tags/", {"tags": "refund, vip"})
    signed_in.post(f"{base}/tags/", {"tags": "vip", "remove": "1"})
    signed_in.post(f"{base}/status/", {"status": "solved"})
    conversation.refresh_from_db()
    assert (conversation.priority, conversation.status) == ("urgent", "solved")
    assert list(conversation.tags.values_list("name", flat=True)) == ["refund"]

    bad = signed_in.post(f"{base}/status/", {"snooze_until": "not a date"})
    later = signed_in.post(f"{base}/status/", {"snooze_until": "2999-01-01T09:00"})
    assert bad.status_code == 400 and later.status_code == 302
    conversation.refresh_from_db()
    assert conversation.status == "pending" and conversation.snoozed_until.year == 2999


def test_merge_into_a_conversation_of_the_same_customer_and_undo(signed_in, agent, inbox):
    other_channel = InboxFactory(kind="email")
    InboxMembership.objects.create(inbox=other_channel, agent=agent)
    first = inbound(inbox, "first")
    second = inbound(other_channel, "second")
    assert first.pk != second.pk

    merged = signed_in.post(f"/c/{second.pk}/merge/", {"into": first.pk})
    assert merged.status_code == 302 and merged["Location"] == f"/c/{first.pk}/"
    record = ConversationMerge.objects.get()
    assert signed_in.get(f"/c/{second.pk}/")["Location"] == f"/c/{first.pk}/"

    undone = signed_in.post(f"/merges/{record.pk}/undo/")
    assert undone.status_code == 302
    second.refresh_from_db()
    assert second.merged_into_id is None and second.messages.count() == 1


def test_customer_text_is_escaped_and_email_html_only_in_a_sandboxed_frame(signed_in, inbox):
    payload = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    conversation = inbound(inbox, payload, html=f"<p>Hello</p>{payload}")

    page = signed_in.get(f"/c/{conversation.pk}/").content.decode()
    frame = signed_in.get(f"/m/{conversation.messages.get().pk}/html/")

    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert '<iframe class="ws-email" sandbox ' in page
    body = frame.content.decode()
    assert "<script" not in body and "onerror" not in body and "<p>Hello</p>" in body
    policy = frame["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "img-src data:;" in policy
    assert (
        "http:"
        in signed_in.get(f"/m/{conversation.messages.get().pk}/html/", {"images": "1"})[
            "Content-Security-Policy"
        ]
    )


def test_query_counts_of_the_list_and_the_conversation_are_pinned(
    signed_in, inbox, django_assert_max_num_queries
):
    for n in range(30):
        inbound(inbox, f"question {n}", who=f"c{n}@example.com")
    conversation = Conversation.objects.first()
    signed_in.get("/")  # session and agent warm

    with django_assert_max_num_queries(8):
        assert signed_in.get("/list/").status_code == 200
    with django_assert_max_num_queries(16):
        assert (
            signed_in.get(reverse("workspace:conversation", args=[conversation.pk])).status_code
            == 200
        )


def test_bulk_actions_change_what_the_agent_may_see_and_skip_the_rest(signed_in, agent, inbox):
    ours = [inbound(inbox, f"q{n}", who=f"b{n}@example.com") for n in range(3)]
    foreign = inbound(InboxFactory(), "not ours", who="x@example.com")
    ids = [c.pk for c in ours] + [foreign.pk]

    assign = signed_in.post("/bulk/", {"ids": ids, "action": "assign_me", "next": "/?view=mine"})
    signed_in.post("/bulk/", {"ids": ids, "action": "tag", "tags": "q4-peak"})
    signed_in.post("/bulk/", {"ids": ids, "action": "status", "status": "pending"})

    assert assign.status_code == 302 and assign["Location"] == "/?view=mine"
    for conversation in ours:
        conversation.refresh_from_db()
        assert conversation.assignee_id == agent.pk and conversation.status == "pending"
        assert list(conversation.tags.values_list("name", flat=True)) == ["q4-peak"]
    foreign.refresh_from_db()
    assert (foreign.assignee_id, foreign.status, foreign.tags.count()) == (None, "new", 0)


def test_bulk_merge_folds_a_customers_conversations_into_the_latest(signed_in, agent, inbox):
    mail = InboxFactory(kind="email")
    InboxMembership.objects.create(inbox=mail, agent=agent)
    older = inbound(inbox, "first")
    newer = inbound(mail, "second")
    other_customer = inbound(inbox, "someone else", who="zed@example.com")

    refused = signed_in.post("/bulk/", {"ids": [older.pk, other_customer.pk], "action": "merge"})
    merged = signed_in.post("/bulk/", {"ids": [older.pk, newer.pk], "action": "merge"})

    assert refused.status_code == merged.status_code == 302
    older.refresh_from_db()
    other_customer.refresh_from_db()
    assert older.merged_into_id == newer.pk and other_customer.merged_into_id is None
    assert ConversationMerge.objects.count() == 1


def test_a_template_renders_in_the_customers_language_and_counts_when_sent(signed_in, agent, inbox):
    from kefu.automation.models import Template

    conversation = inbound(inbox, "我的订单在哪里？")
    template = Template.objects.create(
        name="Where is my order",
        shortcut="wismo",
        bodies={
            "en": "Hi {{ customer.name }}, it ships today.",
            "zh-hans": "{{ customer.name }}，您好！今天发货。",
        },
        default_language="en",
        set_tags=["wismo"],
    )
    elsewhere = Template.objects.create(
        name="Other shop", shortcut="other", bodies={"en": "x"}, inbox_ids=[inbox.pk + 999]
    )

    page = signed_in.get(f"/c/{conversation.pk}/").content.decode()
    rendered = signed_in.get(f"/c/{conversation.pk}/templates/{template.pk}/")
    hidden = signed_in.get(f"/c/{conversation.pk}/templates/{elsewhere.pk}/")

    assert "/wismo" in page and "/other" not in page
    assert rendered.status_code == 200 and hidden.status_code == 404
    body = rendered.content.decode()
    assert conversation.language.startswith("zh")
    assert body == "Ana，您好！今天发货。" and rendered["Content-Language"] == "zh-hans"

    signed_in.post(
        f"/c/{conversation.pk}/reply/", {"text": body + " (edited)", "template": template.pk}
    )
    template.refresh_from_db()
    assert template.usage_count == 1
    assert list(conversation.tags.values_list("name", flat=True)) == ["wismo"]
    assert conversation.messages.filter(direction="outbound").get().text.endswith("(edited)")


def test_the_customer_panel_edits_the_customer_through_the_action(signed_in, inbox):
    conversation = inbound(inbox)
    response = signed_in.post(
        f"/c/{conversation.pk}/customer/",
        {
            "name": "Ana Ruiz",
            "language": "es",
            "location": "Madrid",
            "notes": "VIP",
            "tags": "vip, es",
        },
    )
    too_long = signed_in.post(f"/c/{conversation.pk}/customer/", {"name": "x" * 201})
    customer = conversation.customer
    customer.refresh_from_db()
    assert response.status_code == 302 and too_long.status_code == 422
    assert (customer.name, customer.language, customer.location, customer.notes, customer.tags) == (
        "Ana Ruiz",
        "es",
        "Madrid",
        "VIP",
        ["vip", "es"],
    )


def test_an_outsider_cannot_edit_a_customer_through_a_foreign_conversation(client, inbox):
    conversation = inbound(inbox)
    client.force_login(AgentFactory())
    assert client.post(f"/c/{conversation.pk}/customer/", {"name": "hacked"}).status_code == 404
    conversation.customer.refresh_from_db()
    assert conversation.customer.name == "Ana"


def test_saved_views_belong_to_their_agent(signed_in, agent, client, inbox):
    from kefu.workspace.models import SavedFilter

    saved = signed_in.post(
        "/views/", {"name": "My urgent", "view": "mine", "status": "open", "sort": "waiting"}
    )
    page = signed_in.get("/").content.decode()
    stored = SavedFilter.objects.get()

    assert saved.status_code == 302 and "My urgent" in page
    assert stored.agent == agent
    assert stored.params == {"view": "mine", "status": "open", "sort": "waiting"}
    client.force_login(AgentFactory())
    assert client.post(f"/views/{stored.pk}/delete/").status_code == 404
    assert SavedFilter.objects.count() == 1


def test_files_attached_in_the_composer_are_stored_and_downloadable_only_in_scope(
    signed_in, client, inbox, settings, tmp_path
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.MEDIA_ROOT = tmp_path
    inbox.config = {"max_attachment_bytes": 1000}
    inbox.save()
    conversation = inbound(inbox)
    small = SimpleUploadedFile("label.pdf", b"%PDF-1.4 return label", "application/pdf")
    big = SimpleUploadedFile("photo.jpg", b"x" * 5000, "image/jpeg")

    response = signed_in.post(
        f"/c/{conversation.pk}/reply/", {"text": "Label attached", "files": [small, big]}
    )

    assert response.status_code == 302
    reply = conversation.messages.get(direction="outbound")
    stored = {a.filename: a for a in reply.attachments.all()}
    assert stored["label.pdf"].size == 21 and not stored["label.pdf"].refused_reason
    assert stored["photo.jpg"].refused_reason.startswith("larger than the inbox limit")
    assert not stored["photo.jpg"].file
    download = signed_in.get(f"/a/{stored['label.pdf'].pk}/")
    assert b"".join(download.streaming_content) == b"%PDF-1.4 return label"
    assert download["Content-Type"] == "application/octet-stream"
    assert download["Content-Disposition"].startswith("attachment;")
    client.force_login(AgentFactory())
    assert client.get(f"/a/{stored['label.pdf'].pk}/").status_code == 404


def test_the_team_view_lists_the_teams_conversations(signed_in, agent, inbox):
    from kefu.accounts.models import Team
    from kefu.conversations import actions

    team = Team.objects.create(name="Returns desk")
    team.members.add(agent)
    theirs = inbound(inbox, "Return label please", who="r@example.com")
    inbound(inbox, "Other question", who="o@example.com")
    actions.assign(conversation=theirs, actor=agent, assignee=None, team=team)

    page = signed_in.get("/", {"view": "all", "team": team.pk}).content.decode()

    assert "Returns desk" in page
    assert "Return label please" in page and "Other question" not in page


def test_the_composer_warns_outside_whatsapps_24_hour_window(signed_in, agent):
    from datetime import timedelta

    from django.utils import timezone

    whatsapp = InboxFactory(kind="whatsapp")
    InboxMembership.objects.create(inbox=whatsapp, agent=agent)
    conversation = inbound(whatsapp, "hola")
    fresh = signed_in.get(f"/c/{conversation.pk}/").content.decode()
    Conversation.objects.filter(pk=conversation.pk).update(
        last_inbound_at=timezone.now() - timedelta(hours=30)
    )
    stale = signed_in.get(f"/c/{conversation.pk}/").content.decode()
    assert "24 hours" not in fresh and "24 hours" in stale
