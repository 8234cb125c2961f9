"""Domain-event subscriptions: how automation hears about what happened.

Handlers run after commit, in the process that made the change. Those on the ingest path only
poke the intake (see ``kefu.automation.intake``); the others (replies, status and priority
changes, SLA alerts, order and shipment events) are single events caused by people or by the
tick, and do their small amount of work inline.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from kefu.automation import actions, config, engine, intake
from kefu.automation.models import RoutingMode, Trigger
from kefu.conversations.models import Conversation, Direction, Message
from kefu.core.events import DomainEvent, subscribe

SLA_CHANGES = frozenset({"priority", "status", "merged"})
QUIET_CHANGES = frozenset({"sla", "read", "delivery"})


@subscribe("message.received")
@subscribe("conversation.created")
def on_inbound(event: DomainEvent) -> None:
    intake.poke()


@subscribe("message.queued")
def on_reply(event: DomainEvent) -> None:
    """A reply: the response clocks stop when the policy counts its author."""
    row = (
        Message.objects.filter(pk=event.payload["message_id"], direction=Direction.OUTBOUND)
        .values_list("conversation_id", "author_kind", "sent_at")
        .first()
    )
    if row is None:
        return
    conversation_id, author_kind, sent_at = row
    actions.refresh_sla(conversation_id=conversation_id, response=(author_kind, sent_at))


@subscribe("conversation.status_changed")
def on_status(event: DomainEvent) -> None:
    """Pauses, resumes and resolutions; a solved conversation frees its agent's capacity."""
    conversation_id = event.payload["conversation_id"]
    actions.refresh_sla(conversation_id=conversation_id)
    if event.payload.get("status") in ("solved", "closed", "pending", "on_hold"):
        inbox_id = (
            Conversation.objects.filter(pk=conversation_id)
            .values_list("inbox_id", flat=True)
            .first()
        )
        if inbox_id and config.current().inbox(inbox_id).routing != RoutingMode.OFF:
            actions.route_queue(inbox_id=inbox_id, limit=20)


@subscribe("conversation.updated")
def on_updated(event: DomainEvent) -> None:
    changes = frozenset(event.payload.get("changes") or [])
    conversation_id = event.payload["conversation_id"]
    if changes & SLA_CHANGES - {"status"}:
        actions.refresh_sla(conversation_id=conversation_id)
    if changes and changes <= QUIET_CHANGES:
        return
    if config.current().rules_for(Trigger.CONVERSATION_UPDATED):
        _run(Trigger.CONVERSATION_UPDATED, conversation_id, changes=changes)


@subscribe("sla.warning")
def on_sla_warning(event: DomainEvent) -> None:
    payload = event.payload
    key = f"sla:{payload['target']}:warning:{payload['due_at']}"
    _run(Trigger.SLA_WARNING, payload["conversation_id"], key=key, sla_target=payload["target"])


@subscribe("sla.breached")
def on_sla_breach(event: DomainEvent) -> None:
    payload = event.payload
    key = f"sla:{payload['target']}:breach:{payload['due_at']}"
    _run(Trigger.SLA_BREACHED, payload["conversation_id"], key=key, sla_target=payload["target"])


@subscribe("*")
def on_commerce(event: DomainEvent) -> None:
    """Order and shipment events name the conversations they concern (``conversation_id`` or
    ``conversation_ids``); rules with those triggers act on each."""
    if event.name.startswith("order."):
        trigger = Trigger.ORDER_EVENT
    elif event.name.startswith("shipment."):
        trigger = Trigger.SHIPMENT_EVENT
    else:
        return
    if not config.current().rules_for(trigger):
        return
    ids = list(event.payload.get("conversation_ids") or [])
    if event.payload.get("conversation_id"):
        ids.append(event.payload["conversation_id"])
    for conversation_id in ids:
        _run(trigger, int(conversation_id), event=event.name)


def _run(trigger: str, conversation_id: int, *, key: str = "", **facts: Any) -> None:
    snapshot = config.current()
    if not snapshot.rules_for(trigger):
        return
    conversation = (
        Conversation.objects.select_related("customer")
        .filter(Q(pk=conversation_id), merged_into__isnull=True)
        .first()
    )
    if conversation is None:
        return
    engine.run(
        trigger,
        engine.facts_for(conversation, snapshot=snapshot, **facts),
        key=key,
    )
