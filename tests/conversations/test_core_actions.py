"""Each conversation action: what it changes, what it records, what it emits, what it refuses.

A refused action must leave no trace: no row, no timeline event, no domain event.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from kefu.accounts.models import Role
from kefu.conversations import actions
from kefu.conversations.inbound import InboundMessage
from kefu.conversations.models import (
    AuthorKind,
    Conversation,
    ConversationEvent,
    ConversationMerge,
    DeliveryStatus,
    Direction,
    EventKind,
    InboxMembership,
    Message,
    Priority,
    Status,
    Tag,
)
from kefu.core.errors import Conflict, InvalidInput
from kefu.core.events import subscribe, unsubscribe
from tests.factories import AgentFactory, InboxFactory, TeamFactory

pytestmark = pytest.mark.django_db


def receive(inbox, external_id, email="ana@example.com", text="Where is my order?", **kw):
    return actions.receive_message(
        inbox=inbox,
        message=InboundMessage(
            external_id=external_id, identities=[("email", email)], text=text, **kw
        ),
    ).conversation


def ago(**delta):
    return timezone.now() - timedelta(**delta)


def kinds(conversation):
    return list(
        ConversationEvent.objects.filter(conversation=conversation)
        .order_by("pk")
        .values_list("kind", flat=True)
    )


def last_event(conversation):
    return ConversationEvent.objects.filter(conversation=conversation).order_by("pk").last()


def fresh(conversation):
    return Conversation.objects.get(pk=conversation.pk)


@pytest.fixture
def events():
    """Domain events dispatched after commit: (name, payload) pairs."""
    seen: list = []

    def handler(event):
        seen.append((event.name, event.payload))

    subscribe("*")(handler)
    yield seen
    unsubscribe("*", handler)


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """``with committed():`` runs the on-commit callbacks of the block, as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def conversation(inbox):
    return receive(inbox, "m-1")


def names(events):
    return [name for name, _ in events]


# --- reply -------------------------------------------------------------------------------------


def test_reply_queues_an_outbound_message_and_updates_the_summary(
    conversation, agent, events, committed
):
    with committed():
        message = actions.reply(conversation=conversation, actor=agent, text="It ships today.")

    assert (message.direction, message.author_kind, message.author_agent_id) == (
        Direction.OUTBOUND,
        AuthorKind.AGENT,
        agent.pk,
    )
    assert message.delivery_status == DeliveryStatus.QUEUED
    assert (message.inbox_id, message.external_id) == (conversation.inbox_id, None)
    after = fresh(conversation)
    assert after.status == Status.OPEN
    assert (after.unread_count, after.message_count, after.waiting_since) == (0, 2, None)
    assert after.first_response_at == message.sent_at == after.last_message_at
    assert after.last_message_preview == "It ships today."
    assert kinds(conversation)[-1] == EventKind.REPLIED
    replied = last_event(conversation)
    assert (replied.actor_id, replied.message_id) == (agent.pk, message.pk)
    assert ("message.queued", {"message_id": message.pk, "conversation_id": conversation.pk}) in (
        events
    )
    assert "conversation.updated" in names(events)


def test_reply_with_a_status_changes_it_in_the_same_step(conversation, agent):
    actions.reply(conversation=conversation, actor=agent, text="Refunded.", status=Status.SOLVED)

    after = fresh(conversation)
    assert after.status == Status.SOLVED
    assert after.solved_at is not None
    assert kinds(conversation)[-2:] == [EventKind.REPLIED, EventKind.STATUS_CHANGED]
    assert last_event(conversation).data == {"from": Status.OPEN, "to": Status.SOLVED}


def test_reply_sanitizes_html_and_takes_the_text_from_it(conversation, agent):
    message = actions.reply(
        conversation=conversation,
        actor=agent,
        text="",
        html='<p>Hello <b>Ana</b><script>steal()</script><img src=x onerror="y()"></p>',
    )
    assert "script" not in message.html and "onerror" not in message.html
    assert "<b>Ana</b>" in message.html
    assert message.text == "Hello Ana"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"text": "  "}, "text"),
        ({"text": "", "html": "<p> </p><script>x()</script>"}, "text"),
        ({"text": "x" * (actions.MAX_REPLY_CHARS + 1)}, "text"),
        ({"text": "fine", "status": "bogus"}, "status"),
    ],
)
def test_a_refused_reply_leaves_no_trace(conversation, agent, events, committed, kwargs, field):
    before = (Message.objects.count(), ConversationEvent.objects.count())
    snapshot = Conversation.objects.values().get(pk=conversation.pk)

    with committed(), pytest.raises(InvalidInput) as refused:
        actions.reply(conversation=conversation, actor=agent, **kwargs)

    assert refused.value.field == field
    assert (Message.objects.count(), ConversationEvent.objects.count()) == before
    assert Conversation.objects.values().get(pk=conversation.pk) == snapshot
    assert events == []


def test_a_reply_to_a_merged_conversation_is_refused(inbox, agent):
    source = receive(inbox, "1")
    target = Conversation.objects.create(
        inbox=inbox, customer=source.customer, last_message_at=ago(hours=1)
    )
    actions.merge_conversations(source=source, target=target, actor=agent)
    before = Message.objects.count()

    with pytest.raises(Conflict):
        actions.reply(conversation=source, actor=agent, text="hello?")
    with pytest.raises(Conflict):
        actions.add_note(conversation=source, actor=agent, text="hello?")

    assert Message.objects.count() == before


# --- add_note ----------------------------------------------------------------------------------


def test_a_note_is_internal_and_notifies_the_mentioned_agents(
    conversation, agent, events, committed
):
    maria = AgentFactory(username="maria")
    InboxMembership.objects.create(inbox=conversation.inbox, agent=maria)
    admin = AgentFactory(username="boss", role=Role.ADMIN)
    team_member = AgentFactory(username="li")
    team = TeamFactory()
    team.members.add(team_member)
    conversation.inbox.teams.add(team)
    snapshot = Conversation.objects.values(
        "status", "unread_count", "waiting_since", "last_message_at", "first_response_at"
    ).get(pk=conversation.pk)
    with committed():
        note = actions.add_note(
            conversation=conversation,
            actor=agent,
            text="@maria, @boss and @li: look at this. @nobody. email@example.com",
        )

    assert (note.direction, note.author_agent_id) == (Direction.NOTE, agent.pk)
    assert note.delivery_status == DeliveryStatus.SENT
    noted = last_event(conversation)
    assert noted.kind == EventKind.NOTE_ADDED
    assert sorted(noted.data["mentions"]) == sorted([maria.pk, admin.pk, team_member.pk])
    # A note is not a message to the customer: the queue fields do not move.
    assert (
        Conversation.objects.values(
            "status", "unread_count", "waiting_since", "last_message_at", "first_response_at"
        ).get(pk=conversation.pk)
        == snapshot
    )
    assert fresh(conversation).message_count == 2
    assert "message.queued" not in names(events)
    (added,) = [payload for name, payload in events if name == "note.added"]
    assert sorted(added["mentions"]) == sorted([maria.pk, admin.pk, team_member.pk])


def test_a_mention_of_someone_who_cannot_see_the_inbox_notifies_nobody(conversation, agent):
    AgentFactory(username="stranger")
    AgentFactory(username="gone", is_active=False)

    actions.add_note(conversation=conversation, actor=agent, text="@stranger @gone have a look")

    assert last_event(conversation).data["mentions"] == []


def test_a_note_without_an_actor_is_a_system_note(conversation, events, committed):
    with committed():
        note = actions.add_note(conversation=conversation, actor=None, text="Rule: VIP customer")

    assert (note.author_kind, note.author_agent_id) == (AuthorKind.SYSTEM, None)
    assert last_event(conversation).actor_id is None
    (added,) = [payload for name, payload in events if name == "note.added"]
    assert added["actor_id"] is None


def test_an_empty_note_is_refused(conversation, agent):
    with pytest.raises(InvalidInput):
        actions.add_note(conversation=conversation, actor=agent, text=" ")
    assert Message.objects.filter(direction=Direction.NOTE).count() == 0


# --- assign ------------------------------------------------------------------------------------


def test_assign_records_who_had_it_before(conversation, agent, events, committed):
    lead = AgentFactory(role=Role.LEAD)
    InboxMembership.objects.create(inbox=conversation.inbox, agent=lead)
    team = TeamFactory()

    with committed():
        actions.assign(conversation=conversation, actor=lead, assignee=agent, team=team)
        actions.assign(conversation=conversation, actor=lead, assignee=lead)
        actions.assign(conversation=conversation, actor=lead, assignee=None)

    after = fresh(conversation)
    assert (after.assignee_id, after.team_id) == (None, team.pk)
    assigned = ConversationEvent.objects.filter(kind=EventKind.ASSIGNED).order_by("pk")
    assert [(e.data["from_assignee"], e.data["to_assignee"]) for e in assigned] == [
        (None, agent.pk),
        (agent.pk, lead.pk),
        (lead.pk, None),
    ]
    assert {e.actor_id for e in assigned} == {lead.pk}
    assigned_events = [p for n, p in events if n == "conversation.assigned"]
    assert [(p["previous_assignee_id"], p["assignee_id"]) for p in assigned_events] == [
        (None, agent.pk),
        (agent.pk, lead.pk),
        (lead.pk, None),
    ]
    assert {p["conversation_id"] for p in assigned_events} == {conversation.pk}


def test_assigning_the_same_person_again_records_nothing(conversation, agent):
    actions.assign(conversation=conversation, actor=agent, assignee=agent)
    count = ConversationEvent.objects.count()

    actions.assign(conversation=conversation, actor=agent, assignee=agent)

    assert ConversationEvent.objects.count() == count


def test_an_assignee_without_access_to_the_inbox_is_refused(
    conversation, agent, outsider, events, committed
):
    with committed(), pytest.raises(InvalidInput) as refused:
        actions.assign(conversation=conversation, actor=agent, assignee=outsider)

    assert refused.value.field == "assignee"
    assert fresh(conversation).assignee_id is None
    assert not ConversationEvent.objects.filter(kind=EventKind.ASSIGNED).exists()
    assert events == []


def test_an_inactive_agent_cannot_be_assigned(conversation, agent):
    agent.is_active = False
    agent.save()
    with pytest.raises(InvalidInput):
        actions.assign(conversation=conversation, actor=None, assignee=agent)


def test_access_through_a_team_or_the_admin_role_is_enough(conversation, outsider):
    team = TeamFactory()
    team.members.add(outsider)
    conversation.inbox.teams.add(team)
    admin = AgentFactory(role=Role.ADMIN)

    actions.assign(conversation=conversation, actor=None, assignee=outsider)
    assert fresh(conversation).assignee_id == outsider.pk
    actions.assign(conversation=conversation, actor=None, assignee=admin)
    assert fresh(conversation).assignee_id == admin.pk


# --- set_status --------------------------------------------------------------------------------


def test_status_changes_are_recorded_and_solving_sets_the_time(
    conversation, agent, events, committed
):
    with committed():
        actions.set_status(conversation=conversation, actor=agent, status=Status.PENDING)
        actions.set_status(conversation=conversation, actor=agent, status=Status.SOLVED)
        solved_at = fresh(conversation).solved_at
        actions.set_status(conversation=conversation, actor=agent, status=Status.OPEN)
        assert fresh(conversation).solved_at is None
        actions.set_status(conversation=conversation, actor=agent, status=Status.SOLVED)
        actions.set_status(conversation=conversation, actor=agent, status=Status.CLOSED)

    after = fresh(conversation)
    assert after.status == Status.CLOSED
    assert solved_at is not None and after.solved_at is not None
    changes = ConversationEvent.objects.filter(kind=EventKind.STATUS_CHANGED).order_by("pk")
    assert [(e.data["from"], e.data["to"]) for e in changes] == [
        (Status.NEW, Status.PENDING),
        (Status.PENDING, Status.SOLVED),
        (Status.SOLVED, Status.OPEN),
        (Status.OPEN, Status.SOLVED),
        (Status.SOLVED, Status.CLOSED),
    ]
    assert [p["status"] for n, p in events if n == "conversation.status_changed"] == [
        Status.PENDING,
        Status.SOLVED,
        Status.OPEN,
        Status.SOLVED,
        Status.CLOSED,
    ]


@pytest.mark.parametrize("status", [Status.SOLVED, Status.CLOSED])
def test_solving_or_closing_stops_the_waiting_clock(conversation, agent, status):
    assert fresh(conversation).waiting_since is not None

    actions.set_status(conversation=conversation, actor=agent, status=status)

    assert fresh(conversation).waiting_since is None


def test_a_message_after_solving_starts_the_waiting_clock_afresh(conversation, agent):
    actions.set_status(conversation=conversation, actor=agent, status=Status.SOLVED)

    later = receive(conversation.inbox, "m-2")

    assert later.pk == conversation.pk
    new_message = Message.objects.get(external_id="m-2")
    assert fresh(conversation).waiting_since == new_message.sent_at


def test_closing_keeps_the_time_it_was_solved(conversation, agent):
    actions.set_status(conversation=conversation, actor=agent, status=Status.SOLVED)
    solved_at = fresh(conversation).solved_at
    actions.set_status(conversation=conversation, actor=agent, status=Status.CLOSED)
    assert fresh(conversation).solved_at == solved_at


def test_a_closed_conversation_cannot_change_status(conversation, agent):
    actions.set_status(conversation=conversation, actor=agent, status=Status.CLOSED)
    count = ConversationEvent.objects.count()

    for status in (Status.OPEN, Status.SOLVED, Status.NEW):
        with pytest.raises(Conflict):
            actions.set_status(conversation=conversation, actor=agent, status=status)

    assert fresh(conversation).status == Status.CLOSED
    assert ConversationEvent.objects.count() == count


def test_setting_the_current_status_records_nothing(conversation, agent):
    count = ConversationEvent.objects.count()
    actions.set_status(conversation=conversation, actor=agent, status=Status.NEW)
    assert ConversationEvent.objects.count() == count


def test_an_unknown_status_is_refused(conversation, agent):
    with pytest.raises(InvalidInput) as refused:
        actions.set_status(conversation=conversation, actor=agent, status="archived")
    assert refused.value.field == "status"
    assert fresh(conversation).status == Status.NEW


# --- set_priority ------------------------------------------------------------------------------


def test_priority_changes_are_recorded_once(conversation, agent):
    actions.set_priority(conversation=conversation, actor=agent, priority=Priority.URGENT)
    actions.set_priority(conversation=conversation, actor=agent, priority=Priority.URGENT)

    assert fresh(conversation).priority == Priority.URGENT
    (change,) = ConversationEvent.objects.filter(kind=EventKind.PRIORITY_CHANGED)
    assert change.data == {"from": Priority.NORMAL, "to": Priority.URGENT}
    assert change.actor_id == agent.pk


def test_an_unknown_priority_is_refused(conversation, agent):
    with pytest.raises(InvalidInput) as refused:
        actions.set_priority(conversation=conversation, actor=agent, priority="critical")
    assert refused.value.field == "priority"
    assert fresh(conversation).priority == Priority.NORMAL
    assert not ConversationEvent.objects.filter(kind=EventKind.PRIORITY_CHANGED).exists()


# --- tag / untag -------------------------------------------------------------------------------


def test_tags_are_normalized_created_once_and_only_changes_recorded(conversation, agent):
    other = receive(conversation.inbox, "m-2", email="bob@example.com")

    added = actions.tag(
        conversation=conversation, actor=agent, names=["VIP", " late   delivery ", "vip"]
    )
    again = actions.tag(conversation=conversation, actor=agent, names=["vip"])
    actions.tag(conversation=other, actor=agent, names=["Vip"])

    assert added == ["vip", "late delivery"]
    assert again == []
    assert sorted(Tag.objects.values_list("name", flat=True)) == ["late delivery", "vip"]
    assert sorted(conversation.tags.values_list("name", flat=True)) == ["late delivery", "vip"]
    (tagged,) = ConversationEvent.objects.filter(conversation=conversation, kind=EventKind.TAGGED)
    assert tagged.data == {"tags": ["vip", "late delivery"]}


def test_untag_removes_only_what_is_there(conversation, agent):
    actions.tag(conversation=conversation, actor=agent, names=["vip", "refund"])

    removed = actions.untag(conversation=conversation, actor=agent, names=["VIP", "unknown"])
    nothing = actions.untag(conversation=conversation, actor=agent, names=["vip"])

    assert (removed, nothing) == (["vip"], [])
    assert list(conversation.tags.values_list("name", flat=True)) == ["refund"]
    assert Tag.objects.filter(name="vip").exists()  # the tag stays for other conversations
    (untagged,) = ConversationEvent.objects.filter(kind=EventKind.UNTAGGED)
    assert untagged.data == {"tags": ["vip"]}


@pytest.mark.parametrize("bad", ["", "   ", "x" * 65])
def test_a_bad_tag_refuses_the_whole_call(conversation, agent, bad):
    with pytest.raises(InvalidInput):
        actions.tag(conversation=conversation, actor=agent, names=["good", bad])
    assert conversation.tags.count() == 0
    assert Tag.objects.count() == 0


# --- mark_read ---------------------------------------------------------------------------------


def test_mark_read_clears_the_unread_count_once(inbox, agent, events, committed):
    conversation = receive(inbox, "1")
    receive(inbox, "2")

    with committed():
        actions.mark_read(conversation=conversation, actor=agent)
        actions.mark_read(conversation=conversation, actor=agent)

    assert fresh(conversation).unread_count == 0
    assert names(events) == ["conversation.updated"]
    # Reading is not a change of the conversation: no timeline entry, waiting clock still runs.
    assert fresh(conversation).waiting_since is not None
    assert kinds(conversation)[-1] == EventKind.MESSAGE_ADDED


# --- merge / unmerge ---------------------------------------------------------------------------


@pytest.fixture
def pair(inbox, agent):
    """Two conversations of one customer: the target older and answered, the source newer."""
    other_inbox = InboxFactory(store=inbox.store)
    InboxMembership.objects.create(inbox=other_inbox, agent=agent)
    target = receive(inbox, "t1", text="First request", sent_at=ago(hours=5))
    first_reply = actions.reply(
        conversation=target, actor=agent, text="Answer one", at=ago(hours=4)
    )
    source = receive(other_inbox, "s1", text="Second request", sent_at=ago(hours=2))
    receive(other_inbox, "s2", text="Anyone there?", sent_at=ago(hours=1))
    return source, target, first_reply


def test_merge_moves_the_messages_and_recomputes_both_summaries(pair, agent, events, committed):
    source, target, first_reply = pair

    with committed():
        merge = actions.merge_conversations(source=source, target=target, actor=agent)

    source, target = fresh(source), fresh(target)
    assert (source.merged_into_id, source.status) == (target.pk, Status.CLOSED)
    assert source.messages.count() == 0
    assert list(target.messages.order_by("sent_at").values_list("text", flat=True)) == [
        "First request",
        "Answer one",
        "Second request",
        "Anyone there?",
    ]
    assert target.message_count == 4
    assert target.last_message_preview == "Anyone there?"
    assert target.last_message_at == Message.objects.get(external_id="s2").sent_at
    assert target.last_inbound_at == target.last_message_at
    assert target.waiting_since == Message.objects.get(external_id="s1").sent_at
    assert target.unread_count == 2
    assert target.first_response_at == first_reply.sent_at
    assert (source.message_count, source.unread_count, source.waiting_since) == (0, 0, None)
    assert sorted(merge.message_ids) == sorted(
        Message.objects.filter(external_id__in=["s1", "s2"]).values_list("pk", flat=True)
    )
    assert (merge.source_id, merge.target_id, merge.merged_by_id) == (
        source.pk,
        target.pk,
        agent.pk,
    )
    assert last_event(target).kind == EventKind.MERGED
    assert last_event(target).data == {"source": source.pk, "merge": merge.pk}
    assert last_event(source).data == {"into": target.pk, "merge": merge.pk}
    assert ("conversation.merged", {"source_id": source.pk, "target_id": target.pk,
                                    "merge_id": merge.pk}) in events  # fmt: skip


def test_unmerge_brings_everything_back(pair, agent, events, committed):
    source, target, _ = pair
    source_before = Conversation.objects.values().get(pk=source.pk)
    target_before = Conversation.objects.values().get(pk=target.pk)
    merge = actions.merge_conversations(source=source, target=target, actor=agent)

    with committed():
        restored = actions.unmerge_conversations(merge=merge, actor=agent)

    assert restored.pk == source.pk
    ignored = {"updated_at"}
    after_source = Conversation.objects.values().get(pk=source.pk)
    after_target = Conversation.objects.values().get(pk=target.pk)
    assert {k: v for k, v in after_source.items() if k not in ignored} == {
        k: v for k, v in source_before.items() if k not in ignored
    }
    assert {k: v for k, v in after_target.items() if k not in ignored} == {
        k: v for k, v in target_before.items() if k not in ignored
    }
    moved_back = Message.objects.filter(conversation=source).values_list("external_id", flat=True)
    assert set(moved_back) == {"s1", "s2"}
    assert ConversationMerge.objects.get().undone_at is not None
    assert last_event(target).kind == last_event(source).kind == EventKind.UNMERGED
    assert "conversation.unmerged" in names(events)


def test_a_message_that_arrived_after_the_merge_stays_with_the_target(pair, agent):
    source, target, _ = pair
    merge = actions.merge_conversations(source=source, target=target, actor=agent)
    later = actions.receive_message(
        inbox=source.inbox,
        message=InboundMessage(
            external_id="s3", identities=[("email", "ana@example.com")], text="Later",
            references=["s2"],
        ),
    )  # fmt: skip
    assert later.conversation.pk == target.pk

    actions.unmerge_conversations(merge=merge, actor=agent)

    assert Message.objects.get(external_id="s3").conversation_id == target.pk
    assert fresh(target).last_message_preview == "Later"


def test_merge_refuses_itself_two_customers_and_repeated_merges(inbox, agent):
    ana = receive(inbox, "a", email="ana@example.com")
    ben = receive(inbox, "b", email="ben@example.com")
    ana2 = Conversation.objects.create(
        inbox=inbox, customer=ana.customer, last_message_at=ago(days=9)
    )
    ana3 = Conversation.objects.create(
        inbox=inbox, customer=ana.customer, last_message_at=ago(days=9)
    )

    with pytest.raises(InvalidInput):
        actions.merge_conversations(source=ana, target=ana, actor=agent)
    with pytest.raises(InvalidInput):
        actions.merge_conversations(source=ana, target=ben, actor=agent)
    actions.merge_conversations(source=ana2, target=ana, actor=agent)
    with pytest.raises(Conflict):
        actions.merge_conversations(source=ana2, target=ana3, actor=agent)  # source merged
    with pytest.raises(Conflict):
        actions.merge_conversations(source=ana3, target=ana2, actor=agent)  # target merged

    assert ConversationMerge.objects.count() == 1
    assert Message.objects.get(external_id="b").conversation_id == ben.pk
    assert fresh(ben).merged_into_id is None


def test_an_undone_merge_cannot_be_undone_again(pair, agent):
    source, target, _ = pair
    merge = actions.merge_conversations(source=source, target=target, actor=agent)
    actions.unmerge_conversations(merge=merge, actor=agent)
    count = ConversationEvent.objects.count()

    with pytest.raises(Conflict):
        actions.unmerge_conversations(merge=merge, actor=agent)

    assert ConversationEvent.objects.count() == count


def test_a_merge_cannot_be_undone_while_its_target_is_merged_elsewhere(pair, inbox, agent):
    source, target, _ = pair
    third = Conversation.objects.create(
        inbox=inbox, customer=target.customer, last_message_at=ago(days=1)
    )
    first = actions.merge_conversations(source=source, target=target, actor=agent)
    second = actions.merge_conversations(source=target, target=third, actor=agent)

    with pytest.raises(Conflict):
        actions.unmerge_conversations(merge=first, actor=agent)

    assert fresh(source).merged_into_id == target.pk
    assert Message.objects.filter(conversation=third).count() == 4

    actions.unmerge_conversations(merge=second, actor=agent)
    actions.unmerge_conversations(merge=first, actor=agent)
    assert Message.objects.filter(conversation=source).count() == 2
    assert Message.objects.filter(conversation=target).count() == 2
    assert Message.objects.filter(conversation=third).count() == 0


def test_a_merged_conversation_cannot_change_status(pair, agent):
    source, target, _ = pair
    actions.merge_conversations(source=source, target=target, actor=agent)
    with pytest.raises(Conflict):
        actions.set_status(conversation=source, actor=agent, status=Status.OPEN)


# --- team clearing, NUL characters -------------------------------------------------------------


def test_assign_keeps_the_team_unless_told_to_clear_it(conversation, agent):
    team = TeamFactory()
    actions.assign(conversation=conversation, actor=agent, assignee=agent, team=team)

    actions.assign(conversation=conversation, actor=agent, assignee=None)
    assert (fresh(conversation).assignee_id, fresh(conversation).team_id) == (None, team.pk)

    actions.assign(conversation=conversation, actor=agent, assignee=None, clear_team=True)
    assert fresh(conversation).team_id is None
    cleared = last_event(conversation)
    assert (cleared.kind, cleared.data["team"], cleared.data["to_assignee"]) == (
        EventKind.ASSIGNED,
        None,
        None,
    )


def test_nul_characters_are_dropped_from_replies_notes_and_tags(conversation, agent):
    reply = actions.reply(conversation=conversation, actor=agent, text="On its\x00 way")
    html_reply = actions.reply(
        conversation=conversation, actor=agent, text="", html="<p>Sh\x00ipped</p>"
    )
    note = actions.add_note(conversation=conversation, actor=agent, text="che\x00ck @nobody")
    added = actions.tag(conversation=conversation, actor=agent, names=["V\x00IP"])

    assert Message.objects.get(pk=reply.pk).text == "On its way"
    assert (html_reply.text, html_reply.html) == ("Shipped", "<p>Shipped</p>")
    assert Message.objects.get(pk=note.pk).text == "check @nobody"
    assert added == ["vip"]
    assert list(conversation.tags.values_list("name", flat=True)) == ["vip"]


@pytest.mark.parametrize("text", ["\x00", " \x00 "])
def test_a_reply_of_nothing_but_nul_is_empty(conversation, agent, text):
    with pytest.raises(InvalidInput):
        actions.reply(conversation=conversation, actor=agent, text=text)
    with pytest.raises(InvalidInput):
        actions.tag(conversation=conversation, actor=agent, names=[text])
    assert Message.objects.count() == 1
    assert Tag.objects.count() == 0


# --- concurrency (PostgreSQL) ------------------------------------------------------------------


def _together(*jobs):
    """Run ``jobs`` in threads released at the same moment; returns the exceptions raised."""
    import threading

    from django.db import connection

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
@pytest.mark.parametrize("attempt", range(3))
def test_two_opposite_merges_at_once_end_with_one_merge_and_no_deadlock(attempt):
    inbox = InboxFactory()
    a = receive(inbox, "a")
    b = Conversation.objects.create(inbox=inbox, customer=a.customer, last_message_at=ago(days=9))

    errors = _together(
        lambda: actions.merge_conversations(source=a, target=b, actor=None),
        lambda: actions.merge_conversations(source=b, target=a, actor=None),
    )

    # Locks in id order: the second merge waits, then sees the first and refuses (never a
    # deadlock, which PostgreSQL would break by failing one of them with a 500).
    assert [type(e) for e in errors] == [Conflict]
    (merge,) = ConversationMerge.objects.all()
    source, target = fresh(merge.source), fresh(merge.target)
    assert source.merged_into_id == target.pk
    assert target.merged_into_id is None
    assert Message.objects.get().conversation_id == target.pk


# --- inbox membership --------------------------------------------------------------------------


def test_adding_an_inbox_member_is_audited_once(inbox, outsider):
    from kefu.accounts.models import AuditLog
    from kefu.conversations.selectors import agent_can_access_inbox

    admin = AgentFactory(role=Role.ADMIN)

    actions.add_inbox_member(inbox=inbox, agent=outsider, actor=admin)
    actions.add_inbox_member(inbox=inbox, agent=outsider, actor=admin)

    assert InboxMembership.objects.filter(inbox=inbox, agent=outsider).count() == 1
    (entry,) = AuditLog.objects.filter(action="inbox.member_added")
    assert (entry.actor_id, entry.object_id, entry.data) == (
        admin.pk,
        str(inbox.pk),
        {"agent": outsider.pk},
    )
    assert agent_can_access_inbox(AgentFactory._meta.model.objects.get(pk=outsider.pk), inbox.pk)


def test_nothing_merges_into_a_closed_conversation(pair, agent):
    source, target, _ = pair
    actions.set_status(conversation=target, actor=agent, status=Status.CLOSED)

    with pytest.raises(Conflict):
        actions.merge_conversations(source=source, target=target, actor=agent)

    assert Message.objects.filter(conversation=source).count() == 2
    assert fresh(source).merged_into_id is None


@pytest.mark.parametrize("status", [Status.SOLVED, Status.PENDING, Status.ON_HOLD])
def test_unanswered_messages_merged_into_a_resting_conversation_reopen_it(pair, agent, status):
    source, target, _ = pair
    actions.set_status(conversation=target, actor=agent, status=status)

    actions.merge_conversations(source=source, target=target, actor=agent)

    target = fresh(target)
    assert target.status == Status.OPEN
    assert target.solved_at is None
    assert target.waiting_since == Message.objects.get(external_id="s1").sent_at
    change = ConversationEvent.objects.filter(conversation=target, kind=EventKind.STATUS_CHANGED)
    assert change.order_by("pk").last().data == {"from": status, "to": Status.OPEN}


def test_answered_messages_merged_into_a_solved_conversation_leave_it_solved(pair, agent):
    source, target, _ = pair
    actions.reply(conversation=source, actor=agent, text="Sorted, see the other thread")
    actions.set_status(conversation=target, actor=agent, status=Status.SOLVED)

    actions.merge_conversations(source=source, target=target, actor=agent)

    assert fresh(target).status == Status.SOLVED


def test_a_reply_in_html_gets_a_readable_text(conversation, agent):
    message = actions.reply(
        conversation=conversation, actor=agent, text="", html="<p>Tom &amp; Jerry</p><p>Bye</p>"
    )
    assert message.text == "Tom & Jerry\nBye"
    assert fresh(conversation).last_message_preview == "Tom & Jerry Bye"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(3))
def test_the_same_tag_added_twice_at_once_is_recorded_once(attempt):
    inbox = InboxFactory()
    conversation = receive(inbox, "a")
    results: list = []

    errors = _together(
        lambda: results.append(actions.tag(conversation=conversation, actor=None, names=["vip"])),
        lambda: results.append(actions.tag(conversation=conversation, actor=None, names=["vip"])),
    )

    assert errors == []
    assert sorted(results) == [[], ["vip"]]
    assert list(conversation.tags.values_list("name", flat=True)) == ["vip"]
    assert ConversationEvent.objects.filter(kind=EventKind.TAGGED).count() == 1
