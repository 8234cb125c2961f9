"""REST API v1: customers."""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import ConfigDict

from kefu.accounts.models import Agent
from kefu.customers import actions
from kefu.customers.selectors import customer_conversations, get_customer

router = Router(tags=["customers"])


class IdentityOut(Schema):
    kind: str
    value: str


class CustomerConversationOut(Schema):
    id: int
    inbox_id: int
    channel: str
    subject: str
    status: str
    last_message_at: datetime


class CustomerOut(Schema):
    id: int
    name: str
    email: str
    phone: str
    language: str
    location: str
    tags: list[str]
    merged_into_id: int | None
    identities: list[IdentityOut]
    conversations: list[CustomerConversationOut]
    created_at: datetime


class CustomerPatch(Schema):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    language: str | None = None
    location: str | None = None
    notes: str | None = None
    tags: list[str] | None = None


@router.get("/customers/{customer_id}", response=CustomerOut)
def customer_detail(request: HttpRequest, customer_id: int):  # type: ignore[no-untyped-def]
    """The customer with their identities and the conversations the caller may see."""
    user: Agent = request.auth  # type: ignore[attr-defined, assignment]
    return _customer_out(user, get_customer(user, customer_id))


@router.patch("/customers/{customer_id}", response=CustomerOut)
def customer_update(request: HttpRequest, customer_id: int, payload: CustomerPatch):  # type: ignore[no-untyped-def]
    """Change name, language, location, notes or tags; fields left out stay as they are."""
    user: Agent = request.auth  # type: ignore[attr-defined, assignment]
    customer = get_customer(user, customer_id)
    changes = payload.model_dump(exclude_unset=True)
    customer = actions.update_customer(customer=customer, actor=user, changes=changes)
    return _customer_out(user, customer)


@router.post("/customers/{customer_id}/erase", response=CustomerOut)
def customer_erase(request: HttpRequest, customer_id: int):  # type: ignore[no-untyped-def]
    """Erase the customer's personal data (admins only; not undoable): name, contact fields,
    identities, and the texts and files of all their conversations. Audited."""
    user: Agent = request.auth  # type: ignore[attr-defined, assignment]
    customer = actions.erase_customer(customer=get_customer(user, customer_id), actor=user)
    return _customer_out(user, customer)


def _customer_out(user: Agent, customer) -> dict:  # type: ignore[no-untyped-def]
    conversations = customer_conversations(user, customer)[:200]
    return {
        "id": customer.pk,
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
        "language": customer.language,
        "location": customer.location,
        "tags": customer.tags,
        "merged_into_id": customer.merged_into_id,
        "identities": list(customer.identities.order_by("pk").values("kind", "value")),
        "conversations": [
            {
                "id": c.pk,
                "inbox_id": c.inbox_id,
                "channel": c.inbox.kind,
                "subject": c.subject,
                "status": c.status,
                "last_message_at": c.last_message_at,
            }
            for c in conversations
        ],
        "created_at": customer.created_at,
    }
