"""Domain-event subscribers keeping the index in step with committed writes.

They run after commit (kefu.core.events), must be quick, and never raise into the action that
emitted the event (the bus logs a failure; ``kefu search reindex`` repairs whatever a crash
between commit and indexing left out).
"""

from __future__ import annotations

from django.conf import settings

from kefu.conversations.pipeline import on_inbound_prepared, on_inbound_stored
from kefu.core.events import DomainEvent, subscribe
from kefu.customers.actions import _contact_fields
from kefu.search import index
from kefu.search.engines import engine_for


@on_inbound_prepared
def _analyze_inbound(prepared) -> None:  # type: ignore[no-untyped-def]
    # Outside the storing transaction (and in the request's own thread): the analysis is most
    # of an entry's Python work.
    if settings.KEFU_SEARCH_INDEXING:
        inbound = prepared.inbound
        contact = _contact_fields(prepared.identities)
        prepared.extras.update(
            index.analyze_inbound(
                engine_for(),
                inbound.subject[:300],
                prepared.text,
                # The contact fields a new customer gets from this message (the pipeline's
                # resolve_customer and the batch path's _resolve_customers).
                inbound.customer_name[:200],
                contact.get("email", ""),
                contact.get("phone", ""),
            )
        )


@on_inbound_stored
def _index_inbound(stored) -> None:  # type: ignore[no-untyped-def]
    if settings.KEFU_SEARCH_INDEXING:
        index.index_received(stored)


@subscribe("message.received")
@subscribe("message.queued")
@subscribe("note.added")
def _new_message(event: DomainEvent) -> None:
    if not settings.KEFU_SEARCH_INDEXING:
        return  # `kefu search catch-up` indexes them later
    index.ensure_indexed(int(event.payload["message_id"]))


@subscribe("message.failed")
def _delivery_failed(event: DomainEvent) -> None:
    # The system note telling agents a reply failed has no event of its own; it is newer than
    # the failed message. Failures are rare: catch up at once.
    index.catch_up(int(event.payload["message_id"]))


@subscribe("conversation.merged")
@subscribe("conversation.unmerged")
def _messages_moved(event: DomainEvent) -> None:
    index.resync_conversations([event.payload["source_id"], event.payload["target_id"]])


@subscribe("conversation.updated")
def _conversation_updated(event: DomainEvent) -> None:
    # Only a move to another inbox changes what the index holds (its scope).
    if "inbox" in event.payload.get("changes", ()):
        index.resync_conversations([event.payload["conversation_id"]])


@subscribe("customer.updated")
def _customer_updated(event: DomainEvent) -> None:
    index.index_customers([event.payload["customer_id"]])


@subscribe("customer.merged")
@subscribe("customer.unmerged")
def _customers_merged(event: DomainEvent) -> None:
    # The merged-away customer leaves the results (its conversations now show under the
    # target); an unmerge brings it back.
    index.index_customers([event.payload["source_id"], event.payload["target_id"]])


@subscribe("message.edited")
@subscribe("message.redacted")
def _message_changed(event: DomainEvent) -> None:
    ids = event.payload.get("message_ids") or [event.payload["message_id"]]
    index.reindex_messages(int(pk) for pk in ids)


@subscribe("message.deleted")
def _message_deleted(event: DomainEvent) -> None:
    ids = event.payload.get("message_ids") or [event.payload["message_id"]]
    index.unindex(int(pk) for pk in ids)


@subscribe("customer.erased")
def _customer_erased(event: DomainEvent) -> None:
    customer_id = int(event.payload["customer_id"])
    index.reindex_customer_messages(customer_id)
    index.index_customers([customer_id])
