"""Outbound delivery: reply() queues, deliver_message claims, sends, retries, fails visibly."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from kefu.connectors.base import ConnectorError, SendResult, get_sender
from kefu.conversations import actions
from kefu.conversations.models import (
    AuthorKind,
    ConversationEvent,
    DeliveryStatus,
    Direction,
    EventKind,
    Message,
    Status,
)
from kefu.conversations.tasks import MAX_ATTEMPTS, backoff, deliver_message
from tests.tasks.conftest import start_conversation

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("db_tasks")]

TASK_PATH = "kefu.conversations.tasks.deliver_message"


def delivery_tasks() -> list[list]:
    rows = DBTaskResult.objects.filter(task_path=TASK_PATH).order_by("enqueued_at")
    return [row.args_kwargs["args"] for row in rows]


def queued_reply(staff, kind="api", status=None) -> Message:
    conversation = start_conversation(kind)
    return actions.reply(conversation=conversation, actor=staff, text="On its way!", status=status)


# --- enqueueing --------------------------------------------------------------------------------


def test_a_reply_is_enqueued_for_delivery_only_after_commit(
    staff, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        message = queued_reply(staff)
        # Given the reply's transaction has not committed, nothing is enqueued yet
        assert delivery_tasks() == []

    for callback in callbacks:
        callback()

    assert message.delivery_status == DeliveryStatus.QUEUED
    assert delivery_tasks() == [[message.pk]]


def test_a_rolled_back_reply_enqueues_nothing(staff, django_capture_on_commit_callbacks):
    conversation = start_conversation()

    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        actions.reply(conversation=conversation, actor=staff, text="never sent")
        raise RuntimeError("the request failed after the reply")

    assert delivery_tasks() == []
    assert not Message.objects.filter(direction=Direction.OUTBOUND).exists()


# --- sending -----------------------------------------------------------------------------------


def test_an_api_inbox_reply_is_marked_sent_without_a_provider(
    staff, events, django_capture_on_commit_callbacks
):
    message = queued_reply(staff, kind="api")

    with django_capture_on_commit_callbacks(execute=True):
        outcome = deliver_message.call(message.pk)

    message.refresh_from_db()
    assert outcome == "sent"
    assert message.delivery_status == DeliveryStatus.SENT
    assert message.delivery_error == ""
    assert message.metadata["delivery"]["attempts"] == 1
    assert events("message.sent") == [
        {"message_id": message.pk, "conversation_id": message.conversation_id, "status": "sent"}
    ]


def test_the_provider_id_and_status_are_recorded(staff, whatsapp_sender):
    whatsapp_sender.outcomes = [SendResult(provider_id="wamid.HBgM", status="delivered")]
    message = queued_reply(staff, kind="whatsapp")

    deliver_message.call(message.pk)

    message.refresh_from_db()
    assert whatsapp_sender.sent == [message.pk]
    assert message.external_id == "wamid.HBgM"
    assert message.delivery_status == DeliveryStatus.DELIVERED


def test_a_message_is_sent_once_however_often_its_task_runs(staff, whatsapp_sender):
    message = queued_reply(staff, kind="whatsapp")

    outcomes = [deliver_message.call(message.pk) for _ in range(3)]

    assert outcomes == ["sent", "skipped", "skipped"]
    assert whatsapp_sender.sent == [message.pk]


def test_a_claimed_message_is_not_claimed_again(staff):
    message = queued_reply(staff)

    first = actions.claim_delivery(message_id=message.pk)
    second = actions.claim_delivery(message_id=message.pk)

    assert first is not None and first.pk == message.pk
    assert second is None
    assert Message.objects.get(pk=message.pk).delivery_status == actions.SENDING


def test_inbound_messages_and_notes_are_never_sent(staff):
    conversation = start_conversation()
    note = actions.add_note(conversation=conversation, actor=staff, text="internal")
    inbound = conversation.messages.get(direction=Direction.INBOUND)

    assert actions.claim_delivery(message_id=inbound.pk) is None
    assert actions.claim_delivery(message_id=note.pk) is None
    assert deliver_message.call(note.pk) == "skipped"


# --- transient failures ------------------------------------------------------------------------


def test_a_transient_failure_is_retried_later_with_backoff(
    staff, whatsapp_sender, django_capture_on_commit_callbacks
):
    whatsapp_sender.outcomes = [ConnectorError("provider timed out", permanent=False)]
    message = queued_reply(staff, kind="whatsapp")
    before = timezone.now()

    outcome = deliver_message.call(message.pk)

    after = timezone.now()
    message.refresh_from_db()
    assert outcome == "retrying"
    assert message.delivery_status == DeliveryStatus.QUEUED
    assert message.delivery_error == "provider timed out"
    retry = DBTaskResult.objects.get(task_path=TASK_PATH, args_kwargs__args=[message.pk, 2])
    assert before + backoff(1) <= retry.run_after <= after + backoff(1)


def test_the_retry_succeeds_and_clears_the_error(staff, whatsapp_sender):
    whatsapp_sender.outcomes = [
        ConnectorError("503 from provider", permanent=False),
        SendResult(provider_id="wamid.2"),
    ]
    message = queued_reply(staff, kind="whatsapp")

    assert deliver_message.call(message.pk) == "retrying"
    assert deliver_message.call(message.pk, 2) == "sent"

    message.refresh_from_db()
    assert message.delivery_status == DeliveryStatus.SENT
    assert message.delivery_error == ""
    assert message.metadata["delivery"]["attempts"] == 2
    assert whatsapp_sender.sent == [message.pk, message.pk]


def test_an_unexpected_exception_counts_as_transient(staff, whatsapp_sender):
    whatsapp_sender.outcomes = [KeyError("id")]
    message = queued_reply(staff, kind="whatsapp")

    assert deliver_message.call(message.pk) == "retrying"
    message.refresh_from_db()
    assert message.delivery_status == DeliveryStatus.QUEUED
    assert "KeyError" in message.delivery_error


def test_backoff_grows_fourfold_up_to_a_cap():
    assert [backoff(n) for n in range(1, 7)] == [
        timedelta(seconds=30),
        timedelta(minutes=2),
        timedelta(minutes=8),
        timedelta(minutes=32),
        timedelta(seconds=7680),
        timedelta(hours=3),
    ]


# --- giving up ---------------------------------------------------------------------------------


def failure_notes(conversation_id: int) -> list[Message]:
    return list(
        Message.objects.filter(
            conversation_id=conversation_id,
            direction=Direction.NOTE,
            author_kind=AuthorKind.SYSTEM,
        )
    )


def test_after_the_last_attempt_the_failure_is_visible_and_the_conversation_reopens(
    staff, whatsapp_sender, events, django_capture_on_commit_callbacks
):
    # Given a reply that solved the conversation, and a provider that keeps timing out
    whatsapp_sender.outcomes = [ConnectorError("provider timed out", permanent=False)]
    message = queued_reply(staff, kind="whatsapp", status=Status.SOLVED)

    # When the last attempt fails
    with django_capture_on_commit_callbacks(execute=True):
        outcome = deliver_message.call(message.pk, MAX_ATTEMPTS)

    # Then the message is failed, nothing more is scheduled, agents see why, and it reopens
    message.refresh_from_db()
    conversation = message.conversation
    conversation.refresh_from_db()
    assert outcome == "failed"
    assert message.delivery_status == DeliveryStatus.FAILED
    assert message.delivery_error == "provider timed out"
    assert delivery_tasks() == []
    [note] = failure_notes(conversation.pk)
    assert "provider timed out" in note.text
    assert note.metadata == {"delivery_failed": message.pk}
    assert conversation.status == Status.OPEN
    assert ConversationEvent.objects.filter(
        conversation=conversation, kind=EventKind.STATUS_CHANGED, data__to=Status.OPEN
    ).exists()
    assert events("message.failed") == [
        {
            "message_id": message.pk,
            "conversation_id": conversation.pk,
            "error": "provider timed out",
        }
    ]


def test_a_permanent_failure_gives_up_at_once(staff, whatsapp_sender):
    whatsapp_sender.outcomes = [ConnectorError("recipient is not on WhatsApp", permanent=True)]
    message = queued_reply(staff, kind="whatsapp")

    assert deliver_message.call(message.pk) == "failed"

    message.refresh_from_db()
    assert message.delivery_status == DeliveryStatus.FAILED
    assert whatsapp_sender.sent == [message.pk]
    assert delivery_tasks() == []
    assert len(failure_notes(message.conversation_id)) == 1
    # A failed message is never picked up again
    assert deliver_message.call(message.pk) == "skipped"


def test_a_closed_conversation_stays_closed_when_a_reply_fails(staff, whatsapp_sender):
    whatsapp_sender.outcomes = [ConnectorError("blocked by the recipient", permanent=True)]
    message = queued_reply(staff, kind="whatsapp", status=Status.CLOSED)

    deliver_message.call(message.pk)

    message.conversation.refresh_from_db()
    assert message.conversation.status == Status.CLOSED
    assert len(failure_notes(message.conversation_id)) == 1


def test_a_kind_without_a_connector_fails_permanently():
    with pytest.raises(ConnectorError) as raised:
        get_sender("fax")

    assert raised.value.permanent is True


# --- interrupted sends -------------------------------------------------------------------------


def claimed_minutes_ago(message: Message, minutes: int) -> None:
    """Given: a worker claimed ``message`` that long ago and never came back (killed)."""
    claimed = actions.claim_delivery(message_id=message.pk)
    assert claimed is not None
    stamp = (timezone.now() - timedelta(minutes=minutes)).isoformat()
    delivery = {**claimed.metadata["delivery"], "claimed_at": stamp}
    metadata = {**claimed.metadata, "delivery": delivery}
    Message.objects.filter(pk=message.pk).update(metadata=metadata)


def test_a_send_interrupted_long_ago_fails_visibly_and_is_not_resent(staff, whatsapp_sender):
    from kefu.conversations.tasks import recover_deliveries

    stuck = queued_reply(staff, kind="whatsapp", status=Status.SOLVED)
    claimed_minutes_ago(stuck, 60)
    busy = queued_reply(staff, kind="whatsapp")
    claimed_minutes_ago(busy, 1)
    done = queued_reply(staff, kind="api")
    deliver_message.call(done.pk)

    assert recover_deliveries() == {"failed": [stuck.pk], "requeued": []}

    stuck.refresh_from_db()
    stuck.conversation.refresh_from_db()
    assert stuck.delivery_status == DeliveryStatus.FAILED
    assert "interrupted" in stuck.delivery_error
    assert len(failure_notes(stuck.conversation_id)) == 1
    assert stuck.conversation.status == Status.OPEN
    assert whatsapp_sender.sent == []
    # A claim of a minute ago may still be sending; a sent message is left alone
    assert Message.objects.get(pk=busy.pk).delivery_status == actions.SENDING
    assert Message.objects.get(pk=done.pk).delivery_status == DeliveryStatus.SENT
    assert recover_deliveries() == {"failed": [], "requeued": []}


def queued_minutes_ago(message: Message, minutes: int) -> None:
    Message.objects.filter(pk=message.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes)
    )


def test_a_reply_whose_task_was_lost_is_enqueued_again(staff, whatsapp_sender):
    from kefu.conversations.tasks import recover_deliveries

    # Given a reply queued an hour ago whose task never ran (enqueueing failed), a recent one,
    # and one waiting for a retry scheduled in the future
    lost = queued_reply(staff, kind="whatsapp")
    queued_minutes_ago(lost, 60)
    recent = queued_reply(staff, kind="whatsapp")
    queued_minutes_ago(recent, 2)
    waiting = queued_reply(staff, kind="whatsapp")
    whatsapp_sender.outcomes = [ConnectorError("rate limited", permanent=False)]
    deliver_message.call(waiting.pk)
    queued_minutes_ago(waiting, 60)

    # When a worker starts, only the lost one is enqueued again, as its first attempt
    assert recover_deliveries() == {"failed": [], "requeued": [lost.pk]}
    assert [lost.pk, 1] in delivery_tasks()


def test_a_kind_has_one_sender_unless_replaced(whatsapp_sender):
    from kefu.connectors.base import register_sender

    def other(message: Message) -> SendResult:
        return SendResult()

    with pytest.raises(ValueError, match="already registered"):
        register_sender("whatsapp", other)
    assert get_sender("whatsapp") is whatsapp_sender

    register_sender("whatsapp", other, replace=True)
    assert get_sender("whatsapp") is other


def test_api_and_portal_inboxes_need_no_provider():
    assert get_sender("api")(None).status == DeliveryStatus.SENT  # type: ignore[arg-type]
    assert get_sender("portal")(None).provider_id is None  # type: ignore[arg-type]


def test_an_agent_sends_a_failed_reply_again_and_racing_retries_send_it_once(
    staff, whatsapp_sender, django_capture_on_commit_callbacks
):
    from kefu.core.errors import Conflict

    whatsapp_sender.outcomes = [ConnectorError("provider down for good", permanent=True)]
    message = queued_reply(staff, kind="whatsapp")
    assert deliver_message.call(message.pk) == "failed"
    whatsapp_sender.outcomes = [SendResult(provider_id="wamid.again")]

    with django_capture_on_commit_callbacks(execute=True):
        actions.retry_failed_delivery(message=message, actor=staff)
    with pytest.raises(Conflict):  # the second click of a double click
        actions.retry_failed_delivery(message=message, actor=staff)

    assert delivery_tasks() == [[message.pk]]
    assert deliver_message.call(message.pk) == "sent"
    assert deliver_message.call(message.pk) == "skipped"
    assert whatsapp_sender.sent == [message.pk, message.pk]
    message.refresh_from_db()
    assert message.delivery_status == DeliveryStatus.SENT
    assert message.external_id == "wamid.again"


def test_the_workspace_offers_send_again_on_a_failed_reply(client, staff):
    from kefu.conversations.models import InboxMembership

    message = queued_reply(staff, kind="phone")  # no connector sends phone replies: it fails
    assert deliver_message.call(message.pk) == "failed"
    InboxMembership.objects.create(inbox=message.inbox, agent=staff)
    client.force_login(staff)
    page = client.get(f"/c/{message.conversation_id}/")
    assert b"data-retry" in page.content
    answer = client.post(f"/c/{message.conversation_id}/m/{message.pk}/retry/")
    assert answer.status_code == 302
    message.refresh_from_db()
    assert message.delivery_status == DeliveryStatus.QUEUED
