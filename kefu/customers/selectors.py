"""Scoped reads of customers: an agent sees a customer who has a conversation in one of the
agent's inboxes (admins see all)."""

from __future__ import annotations

from django.db.models import QuerySet

from kefu.accounts.models import Agent
from kefu.conversations.models import Conversation
from kefu.conversations.selectors import conversations_visible_to, visible_inbox_ids
from kefu.core.errors import NotFound
from kefu.customers.models import Customer


def customers_visible_to(agent: Agent) -> QuerySet[Customer]:
    if agent.is_active and agent.sees_every_inbox:
        return Customer.objects.all()
    reachable = Conversation.objects.filter(inbox_id__in=visible_inbox_ids(agent)).values(
        "customer_id"
    )
    return Customer.objects.filter(pk__in=reachable)


def get_customer(agent: Agent, customer_id: int) -> Customer:
    found = customers_visible_to(agent).filter(pk=customer_id).first()
    if found is None:
        raise NotFound(f"customer {customer_id} not found")
    return found


def customer_conversations(agent: Agent, customer: Customer) -> QuerySet[Conversation]:
    """The customer's conversations on every channel that ``agent`` may see, newest first."""
    return (
        conversations_visible_to(agent)
        .filter(customer=customer)
        .select_related("inbox")
        .order_by("-last_message_at", "-id")
    )
