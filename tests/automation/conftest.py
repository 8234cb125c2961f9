from __future__ import annotations

import itertools
from datetime import datetime

import pytest

from kefu.automation import config, intake
from kefu.automation.models import BusinessHours
from kefu.conversations.inbound import InboundMessage
from kefu.conversations.pipeline import receive_message

_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def automation_inline(settings):
    """Automation runs inline after commit (no task worker), on a fresh configuration."""
    settings.KEFU_AUTOMATION_SYNC = True
    config.invalidate()
    intake.poke.reset()
    yield
    config.invalidate()


@pytest.fixture
def defaults(transactional_db):
    """The default policies and hours, with real commits (events dispatch after commit)."""
    from kefu.automation.defaults import install

    install()


@pytest.fixture
def always_open(db):
    """No business hours at all: every clock runs 24/7."""
    BusinessHours.objects.all().delete()
    config.invalidate()


def inbound(inbox, text="Hello, where is my order?", *, who="buyer@example.com", at=None, **kw):
    """Receive one customer message through the real pipeline (events after commit)."""
    message = InboundMessage(
        external_id=f"m-{next(_ids)}",
        identities=[("phone" if who.startswith("+") else "email", who)],
        text=text,
        sent_at=at,
        **kw,
    )
    return receive_message(inbox=inbox, message=message)


def utc(*args: int) -> datetime:
    from datetime import UTC

    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def agent_factory(db):
    """agent_factory(inbox, **fields): an agent who is a member of ``inbox``."""
    from kefu.conversations.models import InboxMembership
    from tests.factories import AgentFactory

    def make(inbox=None, **fields):
        person = AgentFactory(**fields)
        if inbox is not None:
            InboxMembership.objects.create(inbox=inbox, agent=person)
        return person

    return make
