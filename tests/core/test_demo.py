"""The demo data: a believable month of support, written through the actions only."""

from __future__ import annotations

import io
import random
from collections import defaultdict
from datetime import timedelta

import pytest
from django.contrib.auth import authenticate
from django.db.models import Count
from django.utils import timezone

from kefu.accounts.models import Agent, Role
from kefu.conversations.models import (
    Conversation,
    ConversationEvent,
    DeliveryStatus,
    Direction,
    EventKind,
    Inbox,
    Message,
    Status,
)
from kefu.conversations.selectors import agent_can_access_inbox, conversations_visible_to
from kefu.core.demo import (
    CONVERSATIONS,
    CUSTOMERS,
    DEMO_LOGINS,
    SEED,
    DemoRefused,
    _people,
    seed_demo,
    seed_demo_if_empty,
)
from kefu.core.tasks_worker import uses_database_tasks
from kefu.customers.models import Customer
from tests.factories import AgentFactory

LANGUAGES = {"en", "zh", "ar", "es", "de"}


@pytest.mark.django_db(transaction=True)
def test_demo_seeds_an_empty_database_once_with_a_month_of_support_in_five_languages():
    # Given an empty database, when `kefu run --demo` seeds it
    out = io.StringIO()
    assert seed_demo_if_empty(stdout=out) is True

    # Then it has the promised size, and says so
    customers, conversations = Customer.objects.count(), Conversation.objects.count()
    assert CUSTOMERS * 0.95 <= customers <= CUSTOMERS
    assert conversations >= CONVERSATIONS
    assert Message.objects.count() > 3 * CONVERSATIONS
    assert f"{customers} customers, {conversations} conversations" in out.getvalue()
    assert sorted(Inbox.objects.values_list("kind", flat=True)) == sorted(
        ["email", "chat", "whatsapp", "telegram", "marketplace", "api"]
    )

    # And every language, every status, notes, merges and reopenings
    languages = set(Conversation.objects.values_list("language", flat=True))
    assert languages >= LANGUAGES
    statuses = dict(Conversation.objects.values_list("status").annotate(n=Count("id")))
    assert set(statuses) == set(Status.values)
    assert statuses[Status.SOLVED] > statuses[Status.NEW] > 0
    assert Message.objects.filter(direction=Direction.NOTE).count() > 50
    assert Conversation.objects.filter(merged_into__isnull=False).exists()
    assert ConversationEvent.objects.filter(kind=EventKind.REOPENED).exists()
    assert Conversation.objects.filter(priority="high").exists()
    assert Conversation.objects.filter(tags__name="where-is-my-order").exists()

    # And it spans the last 30 days, with some requests overdue (waiting more than a day)
    now = timezone.now()
    oldest = Message.objects.order_by("sent_at").first()
    assert oldest is not None
    assert now - timedelta(days=31) < oldest.sent_at < now - timedelta(days=25)
    assert not Message.objects.filter(sent_at__gt=now).exists()
    active = Conversation.objects.filter(status__in=["new", "open", "pending", "on_hold"])
    overdue = active.filter(waiting_since__lt=now - timedelta(hours=24)).count()
    assert 10 <= overdue <= Conversation.objects.count() // 4

    # And customers are recognised across channels (email and WhatsApp are one person)
    multi_channel = Customer.objects.annotate(n=Count("conversations__inbox", distinct=True))
    assert multi_channel.filter(n__gt=1).count() > 20

    # And each customer message of one story landed in one conversation (threading)
    stories = defaultdict(set)
    inbound = Message.objects.filter(direction=Direction.INBOUND, external_id__startswith="demo-")
    for external_id, conversation_id in inbound.values_list("external_id", "conversation_id"):
        stories[external_id.split("-")[1]].add(conversation_id)
    assert len(stories) >= CONVERSATIONS * 0.95
    assert all(len(found) == 1 for found in stories.values())

    # And history is history: replies count as sent and no delivery task waits for them
    outbound = Message.objects.filter(direction=Direction.OUTBOUND)
    assert set(outbound.values_list("delivery_status", flat=True)) == {DeliveryStatus.SENT}
    if uses_database_tasks():
        from django_tasks_db.models import DBTaskResult

        assert not DBTaskResult.objects.filter(task_path__endswith=".deliver_message").exists()

    # And the printed logins sign in, and each agent sees a part of the desk only
    _assert_logins_and_scopes()

    # And a second start does not seed again
    assert seed_demo_if_empty() is False
    assert Conversation.objects.count() == conversations


def _assert_logins_and_scopes() -> None:
    """The printed logins sign in; assignments respect access; agents see part of the desk."""
    for username, password, role in DEMO_LOGINS:
        agent = authenticate(username=username, password=password)
        assert agent is not None
        assert agent.role == role
    admin = Agent.objects.get(username="admin")
    assert admin.is_superuser
    assert admin.role == Role.ADMIN
    for conversation in Conversation.objects.filter(assignee__isnull=False).select_related(
        "assignee"
    ):
        assert agent_can_access_inbox(conversation.assignee, conversation.inbox_id)
    total = Conversation.objects.count()
    wei = Agent.objects.get(username="wei")
    omar = Agent.objects.get(username="omar")
    assert 0 < conversations_visible_to(wei).count() < total
    assert 0 < conversations_visible_to(omar).count() < total
    assert not conversations_visible_to(wei).filter(inbox__kind="telegram").exists()
    assert conversations_visible_to(admin).count() == total


@pytest.mark.django_db
def test_demo_refuses_a_database_with_data_and_writes_nothing():
    # Given a database with one agent
    AgentFactory()

    # When the demo is seeded without force, it refuses, and if empty-only, it skips
    with pytest.raises(DemoRefused):
        seed_demo()
    assert seed_demo_if_empty() is False

    # Then nothing was written
    assert not Conversation.objects.exists()
    assert not Inbox.objects.exists()
    assert Agent.objects.count() == 1


@pytest.mark.django_db
def test_demo_with_force_adds_beside_existing_data_and_keeps_existing_logins():
    # Given a database where "lena" exists with her own password
    lena = AgentFactory(username="lena")
    lena.set_password("her own password")
    lena.save()

    # When the demo is forced in
    summary = seed_demo(force=True)

    # Then it is added, lena is reused (not replaced, password untouched)
    assert summary.conversations >= CONVERSATIONS
    assert Agent.objects.filter(username="lena").count() == 1
    assert authenticate(username="lena", password="her own password") is not None


def test_demo_customers_are_the_same_every_time():
    first = _people(random.Random(SEED))
    second = _people(random.Random(SEED))
    assert [(p.name, p.email, p.phone, p.kinds) for p in first] == [
        (p.name, p.email, p.phone, p.kinds) for p in second
    ]
    assert {p.language for p in first} == LANGUAGES
    emails = [p.email for p in first]
    phones = [p.phone for p in first if p.phone]
    assert len(set(emails)) == len(emails)
    assert len(set(phones)) == len(phones)
