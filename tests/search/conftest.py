"""Search test helpers: messages through the real pipeline, domain events run as on commit."""

from __future__ import annotations

import pytest

from kefu.conversations.actions import receive_message
from kefu.conversations.inbound import InboundMessage
from kefu.search import index
from kefu.search.service import SearchResults


def receive(inbox, external_id, text, *, email=None, phone=None, name="", **kwargs):
    identities = []
    if email:
        identities.append(("email", email))
    if phone:
        identities.append(("phone", phone))
    if not identities:
        identities.append(("external", f"person-{external_id}"))
    return receive_message(
        inbox=inbox,
        message=InboundMessage(
            external_id=external_id,
            identities=identities,
            text=text,
            customer_name=name,
            **kwargs,
        ),
    )


def conversation_ids(results: SearchResults) -> list[int]:
    return [hit.conversation.pk for hit in results.conversations]


def customer_ids(results: SearchResults) -> list[int]:
    return [hit.customer.pk for hit in results.customers]


@pytest.fixture(autouse=True)
def _fresh_memo():
    """Tests roll back and reuse ids; the indexer's memo of ids indexed by this process (valid
    in production, where committed ids are never reused) must not leak from one to the next."""
    index._memo.ids.clear()
    index._customers_written.clear()
    yield
    index._memo.ids.clear()
    index._customers_written.clear()


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """``with committed():`` runs the block's on-commit callbacks (the domain events' subscribers)
    at its end, as a real commit would; tests otherwise run inside one rolled-back transaction."""
    return lambda: django_capture_on_commit_callbacks(execute=True)
