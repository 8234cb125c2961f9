"""SLA clocks with a frozen clock: due times written on conversations after each event."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection

from kefu.automation import actions as automation
from kefu.automation.models import SlaClock, SlaEvent, SlaPolicy
from kefu.conversations import actions
from kefu.conversations.models import AuthorKind, Conversation, ConversationEvent, EventKind
from kefu.core.events import subscribe, unsubscribe
from tests.automation.conftest import inbound
from tests.factories import InboxFactory, StoreFactory

NY = ZoneInfo("America/New_York")
pytestmark = pytest.mark.usefixtures("defaults")


def ny(*args):
    return datetime(*args, tzinfo=NY)


def fresh(conversation):
    return Conversation.objects.get(pk=conversation.pk)


@pytest.fixture
def store(transactional_db):
    return StoreFactory(timezone="America/New_York", country="US")


def make_inbox(store, kind):
    return InboxFactory(store=store, kind=kind)


@pytest.fixture
def alerts():
    seen = []

    def record(event):
        seen.append((event.name, event.payload["conversation_id"], event.payload["target"]))

    subscribe("sla.breached")(record)
    subscribe("sla.warning")(record)
    yield seen
    unsubscribe("sla.breached", record)
    unsubscribe("sla.warning", record)


def test_chat_first_response_is_due_in_30_seconds_during_business_hours(store):
    with time_machine.travel(ny(2025, 6, 10, 10, 0), tick=False):
        conversation = inbound(make_inbox(store, "chat")).conversation
    conversation = fresh(conversation)
    assert conversation.first_response_due_at == ny(2025, 6, 10, 10, 0, 30)
    assert conversation.next_response_due_at is None
    assert conversation.resolution_due_at is None


def test_email_on_friday_evening_is_due_after_the_weekend(store):
    with time_machine.travel(ny(2025, 6, 13, 17, 0), tick=False):
        conversation = inbound(make_inbox(store, "email")).conversation
    conversation = fresh(conversation)
    # 1 h on Friday, 9 h Monday, 9 h Tuesday, 5 h Wednesday = 24 business hours.
    assert conversation.first_response_due_at == ny(2025, 6, 18, 14, 0)
    # 45 business hours, skipping Juneteenth (Thursday 19 June, a US public holiday).
    assert conversation.resolution_due_at == ny(2025, 6, 23, 17, 0)


def test_independence_day_is_not_counted(store):
    with time_machine.travel(ny(2025, 7, 3, 17, 30), tick=False):
        conversation = inbound(make_inbox(store, "whatsapp")).conversation
    # Thursday 17:30 + 1 h: 30 min on Thursday; Friday 4 July is a public holiday: Monday 09:30.
    assert fresh(conversation).first_response_due_at == ny(2025, 7, 7, 9, 30)


def test_daylight_saving_change_over_the_weekend(store):
    with time_machine.travel(ny(2025, 3, 7, 17, 30), tick=False):
        conversation = inbound(make_inbox(store, "telegram")).conversation
    due = fresh(conversation).first_response_due_at
    assert due == ny(2025, 3, 10, 9, 30)
    assert due.astimezone(UTC) == datetime(2025, 3, 10, 13, 30, tzinfo=UTC)  # EDT now


def test_store_in_another_time_zone_uses_its_own_hours(transactional_db):
    shanghai = StoreFactory(timezone="Asia/Shanghai", country="CN")
    # 10:00 in New York on a Tuesday is 22:00 in Shanghai: closed until 09:00 Wednesday there.
    with time_machine.travel(ny(2025, 6, 10, 10, 0), tick=False):
        conversation = inbound(make_inbox(shanghai, "whatsapp")).conversation
    due = fresh(conversation).first_response_due_at
    assert due == datetime(2025, 6, 11, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_marketplace_clock_runs_through_the_weekend(store):
    with time_machine.travel(ny(2025, 6, 14, 11, 0), tick=False):  # Saturday
        conversation = inbound(make_inbox(store, "marketplace")).conversation
    assert fresh(conversation).first_response_due_at == ny(2025, 6, 15, 11, 0)


def test_marketplace_auto_reply_does_not_count_but_an_agent_reply_does(store, agent_factory):
    inbox = make_inbox(store, "marketplace")
    with time_machine.travel(ny(2025, 6, 14, 11, 0), tick=False):
        conversation = inbound(inbox).conversation
    with time_machine.travel(ny(2025, 6, 14, 11, 1), tick=False):
        actions.reply(
            conversation=conversation,
            actor=None,
            text="Thanks, we got it",
            author_kind=AuthorKind.BOT,
        )
    assert fresh(conversation).first_response_due_at == ny(2025, 6, 15, 11, 0)
    with time_machine.travel(ny(2025, 6, 14, 15, 0), tick=False):
        actions.reply(conversation=conversation, actor=agent_factory(inbox), text="Shipped today")
    conversation = fresh(conversation)
    assert conversation.first_response_due_at is None
    clock = SlaClock.objects.get(pk=conversation.pk)
    assert clock.first_response_breached is False
    met = SlaEvent.objects.get(conversation=conversation, kind="fulfilled")
    assert (met.target, met.met, met.elapsed_seconds) == ("first_response", True, 4 * 3600)


def test_an_auto_reply_counts_where_the_policy_says_so(store):
    inbox = make_inbox(store, "chat")
    with time_machine.travel(ny(2025, 6, 10, 10, 0), tick=False):
        conversation = inbound(inbox).conversation
        actions.reply(conversation=conversation, actor=None, text="Hi!", author_kind=AuthorKind.BOT)
    assert fresh(conversation).first_response_due_at is None


def test_next_response_clock_starts_when_the_customer_writes_again(store, agent_factory):
    inbox = make_inbox(store, "whatsapp")
    person = agent_factory(inbox)
    with time_machine.travel(ny(2025, 6, 10, 10, 0), tick=False):
        conversation = inbound(inbox, who="+14155550100").conversation
    with time_machine.travel(ny(2025, 6, 10, 10, 20), tick=False):
        actions.reply(conversation=conversation, actor=person, text="Let me check")
    assert fresh(conversation).next_response_due_at is None
    with time_machine.travel(ny(2025, 6, 10, 17, 30), tick=False):
        inbound(inbox, "Any news?", who="+14155550100")
    conversation = fresh(conversation)
    assert conversation.first_response_due_at is None
    assert conversation.next_response_due_at == ny(2025, 6, 11, 9, 30)


def test_pending_pauses_and_the_customer_reply_resumes_with_the_time_left(store, agent_factory):
    inbox = make_inbox(store, "email")
    with time_machine.travel(ny(2025, 6, 9, 9, 0), tick=False):  # Monday
        conversation = inbound(inbox).conversation
    assert fresh(conversation).resolution_due_at == ny(2025, 6, 13, 18, 0)  # 45 h
    with time_machine.travel(ny(2025, 6, 9, 11, 0), tick=False):
        actions.reply(
            conversation=conversation,
            actor=agent_factory(inbox),
            text="Which size?",
            status="pending",
        )
    paused = fresh(conversation)
    assert (paused.status, paused.resolution_due_at) == ("pending", None)
    # Three days later the customer answers: 43 business hours were left.
    with time_machine.travel(ny(2025, 6, 12, 10, 0), tick=False):
        inbound(inbox, "Size M please")
    resumed = fresh(conversation)
    assert resumed.status == "open"
    assert resumed.resolution_due_at == ny(2025, 6, 18, 17, 0)
    assert resumed.next_response_due_at == ny(2025, 6, 16, 16, 0)


def test_on_hold_pauses_the_next_response_clock_and_open_resumes_it(store, agent_factory):
    inbox = make_inbox(store, "whatsapp")
    person = agent_factory(inbox)
    with time_machine.travel(ny(2025, 6, 10, 10, 0), tick=False):
        conversation = inbound(inbox, who="+14155550101").conversation
        actions.reply(conversation=conversation, actor=person, text="Looking")
    with time_machine.travel(ny(2025, 6, 10, 11, 0), tick=False):
        inbound(inbox, "And?", who="+14155550101")
    assert fresh(conversation).next_response_due_at == ny(2025, 6, 10, 12, 0)
    with time_machine.travel(ny(2025, 6, 10, 11, 40), tick=False):
        actions.set_status(conversation=conversation, actor=person, status="on_hold")
    assert fresh(conversation).next_response_due_at is None
    with time_machine.travel(ny(2025, 6, 11, 9, 0), tick=False):
        actions.set_status(conversation=conversation, actor=person, status="open")
    assert fresh(conversation).next_response_due_at == ny(2025, 6, 11, 9, 20)


def test_solving_records_resolution_and_reopening_resumes_it(store, agent_factory):
    inbox = make_inbox(store, "email")
    person = agent_factory(inbox)
    with time_machine.travel(ny(2025, 6, 9, 9, 0), tick=False):
        conversation = inbound(inbox).conversation
    with time_machine.travel(ny(2025, 6, 9, 12, 0), tick=False):
        actions.reply(conversation=conversation, actor=person, text="Done", status="solved")
    solved = fresh(conversation)
    assert (solved.resolution_due_at, solved.first_response_due_at) == (None, None)
    record = SlaEvent.objects.get(conversation=conversation, target="resolution")
    assert (record.met, record.elapsed_seconds) == (True, 3 * 3600)
    with time_machine.travel(ny(2025, 6, 10, 9, 0), tick=False):
        inbound(inbox, "It broke again")
    reopened = fresh(conversation)
    # 42 business hours were left when it was solved.
    assert reopened.resolution_due_at == ny(2025, 6, 16, 15, 0)
    assert reopened.next_response_due_at == ny(2025, 6, 12, 15, 0)


def test_breach_and_warning_fire_once_however_often_the_tick_runs(store, alerts):
    with time_machine.travel(ny(2025, 6, 10, 10, 0), tick=False):
        conversation = inbound(make_inbox(store, "chat")).conversation
    with time_machine.travel(ny(2025, 6, 10, 10, 0, 25), tick=False):
        assert automation.fire_due_sla() == [(conversation.pk, "first_response", "warning")]
        assert automation.fire_due_sla() == []
    with time_machine.travel(ny(2025, 6, 10, 10, 1), tick=False):
        assert automation.fire_due_sla() == [(conversation.pk, "first_response", "breach")]
        assert automation.fire_due_sla() == []
    with time_machine.travel(ny(2025, 6, 10, 11, 0), tick=False):
        assert automation.fire_due_sla() == []
    assert alerts == [
        ("sla.warning", conversation.pk, "first_response"),
        ("sla.breached", conversation.pk, "first_response"),
    ]
    timeline = ConversationEvent.objects.filter(
        conversation=conversation, kind=EventKind.SLA_BREACHED
    )
    assert [e.data["target"] for e in timeline] == ["first_response"]
    assert SlaClock.objects.get(pk=conversation.pk).first_response_breached is True


def test_a_late_response_is_recorded_as_missed(store, agent_factory):
    inbox = make_inbox(store, "chat")
    with time_machine.travel(ny(2025, 6, 10, 10, 0), tick=False):
        conversation = inbound(inbox).conversation
    with time_machine.travel(ny(2025, 6, 10, 10, 5), tick=False):
        automation.fire_due_sla()
        actions.reply(conversation=conversation, actor=agent_factory(inbox), text="Sorry")
    record = SlaEvent.objects.get(conversation=conversation, kind="fulfilled")
    assert (record.met, record.elapsed_seconds) == (False, 300)


def test_a_paused_conversation_does_not_breach(store, agent_factory):
    inbox = make_inbox(store, "chat")
    with time_machine.travel(ny(2025, 6, 10, 10, 0), tick=False):
        conversation = inbound(inbox).conversation
        actions.set_status(conversation=conversation, actor=agent_factory(inbox), status="on_hold")
    with time_machine.travel(ny(2025, 6, 10, 12, 0), tick=False):
        assert automation.fire_due_sla() == []
    assert not SlaEvent.objects.exists()


def test_priority_change_can_switch_policy(store):
    SlaPolicy.objects.create(
        name="Urgent",
        position=1,
        priorities=["urgent"],
        first_response_seconds=600,
        clock="calendar",
    )
    automation.bump_config()
    with time_machine.travel(ny(2025, 6, 14, 11, 0), tick=False):  # Saturday: closed
        conversation = inbound(make_inbox(store, "email")).conversation
        assert fresh(conversation).first_response_due_at == ny(2025, 6, 18, 15, 0)
        actions.set_priority(conversation=conversation, actor=None, priority="urgent")
    assert fresh(conversation).first_response_due_at == ny(2025, 6, 14, 11, 10)


def test_policy_conditions_store_segment_and_intent(store, transactional_db):
    from kefu.automation import config, sla

    vip = SlaPolicy.objects.create(
        name="VIP", position=1, segments=["vip"], first_response_seconds=60
    )
    other_store = StoreFactory()
    local = SlaPolicy.objects.create(
        name="Store", position=2, store_ids=[other_store.pk], first_response_seconds=120
    )
    automation.bump_config()
    policies = config.current().policies

    def subject(**kw):
        base = dict(
            id=1, inbox_id=1, inbox_kind="email", store_id=store.pk, status="new", priority="normal"
        )
        return sla.Subject(**{**base, **kw})

    assert sla.choose(policies, subject(segments=frozenset({"vip"}))).id == vip.pk
    assert sla.choose(policies, subject(store_id=other_store.pk)).id == local.pk
    assert sla.choose(policies, subject(intent="complaint")).name.startswith("Complaints")
    assert sla.choose(policies, subject()).name == "Email"
    assert sla.choose(policies, subject(inbox_kind="api")).name == "Everything else"


@pytest.mark.postgres
def test_two_workers_ticking_at_once_fire_each_breach_once(store, alerts):
    inbox = make_inbox(store, "chat")
    with time_machine.travel(ny(2025, 6, 10, 10, 0), tick=False):
        ids = [inbound(inbox, who=f"c{i}@example.com").conversation.pk for i in range(20)]
    results = []
    barrier = threading.Barrier(2)

    def worker():
        try:
            with time_machine.travel(ny(2025, 6, 10, 10, 5), tick=False):
                barrier.wait()
                results.extend(automation.fire_due_sla())
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    breaches = sorted(pk for pk, target, kind in results if kind == "breach")
    assert breaches == sorted(ids)
    assert SlaEvent.objects.filter(kind="breach").count() == 20
    assert ConversationEvent.objects.filter(kind=EventKind.SLA_BREACHED).count() == 20
    assert sorted(a[1] for a in alerts if a[0] == "sla.breached") == sorted(ids)
