"""Routing: round robin, load balancing with capacity, skills, availability, concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from kefu.automation import actions as automation
from kefu.automation import routing
from kefu.automation.models import AgentRoutingState
from kefu.conversations import actions
from kefu.conversations.models import Conversation, ConversationEvent, EventKind, InboxMembership
from tests.automation.conftest import inbound
from tests.factories import AgentFactory, InboxFactory

pytestmark = pytest.mark.usefixtures("transactional_db")


def members(inbox, n, **fields):
    people = [AgentFactory(**fields) for _ in range(n)]
    for person in people:
        InboxMembership.objects.create(inbox=inbox, agent=person)
    return people


def routed(inbox, mode="round_robin", **fields):
    automation.set_routing(actor=None, inbox=inbox, data={"mode": mode, **fields})


def assignees(conversations):
    return [Conversation.objects.get(pk=c.pk).assignee_id for c in conversations]


def new_conversations(inbox, n, prefix="c"):
    return [inbound(inbox, "hello", who=f"{prefix}{i}@example.com").conversation for i in range(n)]


def test_round_robin_order():
    inbox = InboxFactory()
    a, b, c = members(inbox, 3)
    routed(inbox)
    conversations = new_conversations(inbox, 6)
    assert assignees(conversations) == [a.pk, b.pk, c.pk, a.pk, b.pk, c.pk]
    event = ConversationEvent.objects.filter(kind=EventKind.ASSIGNED).first()
    assert event.actor is None and event.data["routing"] == "round_robin"


def test_routing_off_assigns_nobody():
    inbox = InboxFactory()
    members(inbox, 2)
    conversations = new_conversations(inbox, 2)
    assert assignees(conversations) == [None, None]


def test_capacity_is_respected_and_freed_capacity_takes_the_queue():
    inbox = InboxFactory()
    a, b = members(inbox, 2, capacity=1)
    routed(inbox)
    first, second, third = new_conversations(inbox, 3)
    assert assignees([first, second, third]) == [a.pk, b.pk, None]
    actions.set_status(conversation=first, actor=a, status="solved")
    assert assignees([third]) == [a.pk]


def test_load_balanced_gives_work_to_the_least_loaded():
    inbox = InboxFactory()
    a, b = members(inbox, 2, capacity=10)
    for i in range(3):
        conversation = inbound(inbox, "x", who=f"pre{i}@example.com").conversation
        actions.assign(conversation=conversation, actor=None, assignee=a)
    routed(inbox, "load_balanced")
    conversations = new_conversations(inbox, 4)
    assert assignees(conversations) == [b.pk, b.pk, b.pk, a.pk]


def test_skills_send_chinese_to_a_chinese_speaker():
    inbox = InboxFactory()
    en = members(inbox, 1, skills={"languages": ["en"]})[0]
    zh = members(inbox, 1, skills={"languages": ["zh", "en"]})[0]
    routed(inbox)
    chinese = inbound(
        inbox, "你好，我的订单还没到，请帮我查一下物流", who="wang@example.com"
    ).conversation
    english = inbound(inbox, "Hello, where is my order please?", who="amy@example.com").conversation
    assert assignees([chinese]) == [zh.pk]
    assert assignees([english]) == [en.pk]


def test_without_fallback_nobody_unskilled_gets_it():
    inbox = InboxFactory()
    members(inbox, 1, skills={"languages": ["en"]})
    routed(inbox, skills_fallback=False)
    arabic = inbound(inbox, "مرحبا، أين طلبي؟ مرّ عشرة أيام ولم يصل", who="omar@example.com")
    assert assignees([arabic.conversation]) == [None]


def test_category_skills():
    assert routing.Candidate(1, 5, frozenset(), frozenset({"refund"})).has_skills("en", "refund")
    assert not routing.Candidate(1, 5, frozenset(), frozenset({"refund"})).has_skills("en", "wismo")
    assert routing.Candidate(1, 5, frozenset(), frozenset()).has_skills("ar", "anything")


def test_unavailable_agents_get_no_work():
    inbox = InboxFactory()
    a, b = members(inbox, 2)
    a.is_available = False
    a.save()
    routed(inbox)
    assert assignees(new_conversations(inbox, 3)) == [b.pk, b.pk, b.pk]


def test_work_of_an_agent_who_went_away_returns_after_the_grace_time():
    inbox = InboxFactory()
    a, b = members(inbox, 2)
    routed(inbox, away_grace_minutes=10)
    start = timezone.now()
    first, second = new_conversations(inbox, 2)
    assert assignees([first, second]) == [a.pk, b.pk]
    a.is_available = False
    a.save()
    with time_machine.travel(start + timedelta(minutes=1), tick=False):
        assert automation.return_work_of_away_agents() == []
    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        assert automation.return_work_of_away_agents() == []  # within the grace time
    with time_machine.travel(start + timedelta(minutes=12), tick=False):
        assert automation.return_work_of_away_agents() == [first.pk]
    assert assignees([first]) == [b.pk]
    returned = ConversationEvent.objects.get(
        conversation=first, kind=EventKind.ASSIGNED, data__routing="returned_to_queue"
    )
    assert returned.data["to_assignee"] is None
    # Back again: the away mark is cleared.
    a.is_available = True
    a.save()
    automation.return_work_of_away_agents()
    assert AgentRoutingState.objects.get(agent=a).away_since is None


def test_fairness_is_measured():
    inbox = InboxFactory()
    people = members(inbox, 4)
    routed(inbox)
    since = timezone.now() - timedelta(seconds=1)
    new_conversations(inbox, 8)
    measured = routing.measure_fairness(since=since, agent_ids=[p.pk for p in people])
    assert measured.counts == {p.pk: 2 for p in people}
    assert (measured.jain_index, measured.coefficient_of_variation, measured.total) == (1.0, 0.0, 8)
    skewed = routing.fairness_of({1: 6, 2: 1, 3: 1})
    assert skewed.jain_index < 0.6


@pytest.mark.postgres
def test_two_workers_routing_at_once_never_assign_twice():
    inbox = InboxFactory()
    people = members(inbox, 4, capacity=5)
    conversations = new_conversations(inbox, 20)  # routing off: all in the queue
    routed(inbox)
    barrier = threading.Barrier(2)
    done = []

    def worker():
        try:
            barrier.wait()
            done.extend(automation.route_queue(inbox_id=inbox.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(c for c, _ in done) == sorted(c.pk for c in conversations)
    per_conversation = {
        c.pk: ConversationEvent.objects.filter(conversation=c, kind=EventKind.ASSIGNED).count()
        for c in conversations
    }
    assert set(per_conversation.values()) == {1}
    loads = routing.open_counts(p.pk for p in people)
    assert loads == {p.pk: 5 for p in people}
