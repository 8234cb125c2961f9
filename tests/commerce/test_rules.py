"""Commerce events drive the automation app's ORDER_EVENT / SHIPMENT_EVENT rules (the payload
contract of kefu/automation/handlers.py: the conversations an event concerns)."""

from __future__ import annotations

import pytest

from kefu.automation import actions as automation
from kefu.automation import config
from kefu.automation.models import BusinessHours
from kefu.commerce import actions
from tests.commerce.conftest import make_order
from tests.factories import ConversationFactory, InboxFactory, StoreFactory


@pytest.fixture
def live_rules(transactional_db, settings):
    settings.KEFU_AUTOMATION_SYNC = True
    BusinessHours.objects.all().delete()
    config.invalidate()
    automation.bump_config()
    yield
    config.invalidate()


def rule(trigger, event, tag):
    automation.save_rule(
        actor=None,
        data={
            "name": tag,
            "trigger": trigger,
            "conditions": [{"field": "event", "op": "is", "value": event}],
            "actions": [{"type": "add_tags", "tags": [tag]}],
        },
    )


def tags_of(conversation):
    return sorted(conversation.tags.values_list("name", flat=True))


def test_a_carrier_exception_and_a_refund_tag_the_linked_conversation(live_rules):
    rule("shipment_event", "shipment.exception", "delivery-problem")
    rule("order_event", "order.updated", "order-touched")
    store = StoreFactory()
    order = make_order(store)
    conversation = ConversationFactory(inbox=InboxFactory(store=store), customer=order.customer)
    unrelated = ConversationFactory(inbox=conversation.inbox)
    actions.link_order(conversation=conversation, order=order, actor=None)
    actions.upsert_shipment(order=order, external_id="s", carrier="dhl",
                            tracking_number="3318810025", status="exception")  # fmt: skip
    assert tags_of(conversation) == ["delivery-problem", "order-touched"]
    assert tags_of(unrelated) == []
