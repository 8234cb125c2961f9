"""The intake: cursor, gaps of transactions in flight, the lease, the batch ingest path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kefu.automation import intake
from kefu.automation.models import AutomationState, SlaClock
from kefu.conversations.inbound import InboundMessage
from kefu.conversations.models import Conversation
from tests.factories import InboxFactory

NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)


def test_missing_ids_become_gaps_and_found_ones_leave():
    gaps = intake._new_gaps(10, [11, 14, 15, 19], NOW)
    assert gaps == [[12, 13, NOW.isoformat()], [16, 18, NOW.isoformat()]]
    assert intake._remaining_gaps(gaps, {12, 17}, NOW) == [
        [13, 13, NOW.isoformat()],
        [16, 16, NOW.isoformat()],
        [18, 18, NOW.isoformat()],
    ]
    assert intake._remaining_gaps(gaps, set(), NOW + timedelta(minutes=2)) == []


@pytest.mark.django_db
def test_a_drain_holding_the_lease_is_asked_to_go_round_again():
    assert intake._acquire("a")
    assert not intake._acquire("b")  # b marks the row dirty instead of competing
    assert not intake._release("a")  # a must go round once more
    assert intake._release("a")
    assert intake._acquire("b")


@pytest.mark.django_db
def test_an_expired_lease_is_taken_over():
    assert intake._acquire("dead")
    AutomationState.objects.filter(name="intake").update(
        lease_until=datetime(2000, 1, 1, tzinfo=UTC)
    )
    assert intake._acquire("alive")


def test_batch_ingestion_gets_clocks_for_every_conversation(defaults):
    from kefu.conversations.batch import receive_batch

    inbox = InboxFactory(kind="email")
    entries = [
        (
            inbox,
            InboundMessage(
                external_id=f"b{i}",
                identities=[("email", f"batch{i % 5}@example.com")],
                text=f"message {i}",
            ),
        )
        for i in range(20)
    ]
    receive_batch(entries)
    conversations = Conversation.objects.filter(inbox=inbox)
    assert conversations.count() == 5
    assert SlaClock.objects.filter(conversation__in=conversations, intake_done=True).count() == 5
    assert not conversations.filter(first_response_due_at__isnull=True).exists()
    state = AutomationState.objects.get(name="intake")
    assert state.lease_owner == ""
    # Ids below this test's messages (used by earlier tests of a flushed database) may wait as
    # gaps for a minute; none of this test's messages is among them.
    first = min(Conversation.objects.filter(inbox=inbox).values_list("messages__pk", flat=True))
    assert all(high < first for _, high, _ in state.data.get("gaps", []))
