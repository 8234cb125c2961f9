from __future__ import annotations

from collections.abc import Callable

import pytest

from kefu.connectors import base
from kefu.connectors.base import SendResult
from kefu.conversations.actions import receive_message
from kefu.conversations.inbound import InboundMessage
from kefu.conversations.models import Conversation, Message
from kefu.core.events import DomainEvent, subscribe, unsubscribe
from tests.factories import AgentFactory, InboxFactory

DB_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}


@pytest.fixture(autouse=True)
def automation_inline(settings):
    """Automation's intake runs inline, so the only queued tasks are the ones a test enqueues."""
    settings.KEFU_AUTOMATION_SYNC = True


@pytest.fixture
def db_tasks(settings):
    """The database task backend, whatever the run's configuration (the scale run uses RQ)."""
    settings.TASKS = DB_TASKS


def start_conversation(kind: str = "api", external_id: str = "in-1") -> Conversation:
    """A conversation in a fresh inbox of ``kind``, opened by one inbound customer message."""
    inbox = InboxFactory(kind=kind)
    result = receive_message(
        inbox=inbox,
        message=InboundMessage(
            external_id=external_id,
            identities=[("email", f"{external_id}@example.com")],
            text="Where is my parcel?",
        ),
    )
    return result.conversation


@pytest.fixture
def staff(db):
    return AgentFactory()


class RecordingSender:
    """A connector double for one inbox kind: records what it was asked to send, and answers
    with the outcomes it was given (a SendResult, or an exception to raise), last one repeated.
    """

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.outcomes: list[SendResult | Exception] = [SendResult(provider_id=None)]

    def __call__(self, message: Message) -> SendResult:
        self.sent.append(message.pk)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@pytest.fixture
def whatsapp_sender():
    """Stand in for the WhatsApp provider (the boundary kefu does not own)."""
    recording = RecordingSender()
    previous = base._senders.get("whatsapp")
    base.register_sender("whatsapp", recording, replace=True)
    yield recording
    if previous is None:
        base.unregister_sender("whatsapp")
    else:
        base.register_sender("whatsapp", previous, replace=True)


@pytest.fixture
def events() -> Callable[[str], list[dict]]:
    """``events(name)``: payloads of the committed domain events of that name, in order."""
    seen: list[DomainEvent] = []
    handler = seen.append
    subscribe("*")(handler)
    yield lambda name: [e.payload for e in seen if e.name == name]
    unsubscribe("*", handler)
