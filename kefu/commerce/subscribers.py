"""Domain-event subscribers of the commerce app (registered in apps.CommerceConfig.ready)."""

from __future__ import annotations

from kefu.commerce import actions
from kefu.conversations.models import Direction, Message
from kefu.core.events import DomainEvent, subscribe


@subscribe("message.received")
def link_orders_in_message(event: DomainEvent) -> None:
    """Link the orders an inbound message names (order or tracking number) to its conversation.

    Cheap when the text names nothing: the recognisers run before any query but the message's.
    """
    message_id = event.payload.get("message_id")
    if not isinstance(message_id, int):
        return
    message = (
        Message.objects.select_related("conversation__inbox")
        .filter(pk=message_id, direction=Direction.INBOUND)
        .first()
    )
    if message is None or message.conversation is None:
        return
    text = f"{message.subject}\n{message.text}"
    actions.link_mentioned_orders(conversation=message.conversation, text=text)
