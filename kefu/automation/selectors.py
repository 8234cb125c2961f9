"""Scoped reads of automation objects. Foreign or invisible ids are NotFound, never Forbidden."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Coalesce, Least

from kefu.accounts.models import Agent, Role
from kefu.automation.models import BusinessHours, Rule, RuleExecution, SlaPolicy, Template
from kefu.conversations.models import ACTIVE_STATUSES, Conversation
from kefu.conversations.selectors import conversations_visible_to, visible_inbox_ids
from kefu.core.errors import Forbidden, NotFound


def is_manager(agent: Agent) -> bool:
    return agent.is_active and (agent.sees_every_inbox or agent.role == Role.LEAD)


def require_manager(agent: Agent) -> None:
    """Configuration pages and endpoints are for team leads and admins."""
    if not is_manager(agent):
        raise Forbidden("only team leads and admins can see automation settings")


def _in_scope(agent: Agent, inbox_ids: list[int]) -> bool:
    if agent.sees_every_inbox or not inbox_ids:
        return True
    return not set(inbox_ids).isdisjoint(visible_inbox_ids(agent))


def policies_for(agent: Agent) -> QuerySet[SlaPolicy]:
    require_manager(agent)
    return SlaPolicy.objects.all()


def get_policy(agent: Agent, policy_id: int) -> SlaPolicy:
    found = policies_for(agent).filter(pk=policy_id).first()
    if found is None:
        raise NotFound(f"SLA policy {policy_id} not found")
    return found


def hours_for(agent: Agent) -> QuerySet[BusinessHours]:
    require_manager(agent)
    return BusinessHours.objects.select_related("store").prefetch_related("holidays")


def get_hours(agent: Agent, hours_id: int) -> BusinessHours:
    found = hours_for(agent).filter(pk=hours_id).first()
    if found is None:
        raise NotFound(f"business hours {hours_id} not found")
    return found


def rules_for(agent: Agent) -> list[Rule]:
    """Leads see global rules and those touching their inboxes; admins see every rule."""
    require_manager(agent)
    return [r for r in Rule.objects.all() if _in_scope(agent, r.inbox_ids)]


def get_rule(agent: Agent, rule_id: int) -> Rule:
    for rule in rules_for(agent):
        if rule.pk == rule_id:
            return rule
    raise NotFound(f"rule {rule_id} not found")


def templates_for(
    agent: Agent, query: str = "", *, include_inactive: bool = False
) -> list[Template]:
    """Templates the agent may use, matched by name or shortcut; exact shortcut first, then the
    most used."""
    rows = Template.objects.all() if include_inactive else Template.objects.filter(is_active=True)
    query = query.strip().lstrip("/").lower()
    if query:
        rows = rows.filter(Q(shortcut__istartswith=query) | Q(name__icontains=query))
    found = [
        t for t in rows.order_by("-usage_count", "name")[:500] if _in_scope(agent, t.inbox_ids)
    ]
    found.sort(key=lambda t: (t.shortcut != query, -t.usage_count, t.name))
    return found


def get_template(agent: Agent, template_id: int) -> Template:
    found = Template.objects.filter(pk=template_id).first()
    if found is None or not _in_scope(agent, found.inbox_ids):
        raise NotFound(f"template {template_id} not found")
    return found


def executions_of(agent: Agent, conversation: Conversation) -> QuerySet[RuleExecution]:
    """The rule log of a conversation the agent already obtained through a scoped selector."""
    return RuleExecution.objects.filter(conversation=conversation).order_by("-created_at", "-id")


def at_risk(agent: Agent, *, until: datetime, limit: int = 100) -> QuerySet[Conversation]:
    """Active conversations visible to the agent with an SLA due before ``until`` (breached ones
    included), soonest first."""
    due = (
        Q(first_response_due_at__lte=until)
        | Q(next_response_due_at__lte=until)
        | Q(resolution_due_at__lte=until)
    )
    far = Value(datetime(9999, 1, 1, tzinfo=UTC))
    soonest = Least(
        *(Coalesce(name, far) for name in ("first_response_due_at", "next_response_due_at")),
        Coalesce("resolution_due_at", far),
    )
    return (
        conversations_visible_to(agent)
        .filter(due, status__in=ACTIVE_STATUSES, merged_into__isnull=True)
        .select_related("inbox", "assignee")
        .annotate(sla_due_at=soonest)
        .order_by("sla_due_at", "pk")[:limit]
    )
