"""Routing: who gets a conversation (pure choice plus the reads it needs).

Only agents who are active, marked available, members of the inbox (directly or through one of
its teams; only the routing team's members when one is set) and under their capacity get work.
Capacity counts the agent's conversations in new or open status (pending and on-hold ones wait
on someone else). With skills on, an agent who lists languages must speak the conversation's
language and one who lists categories must handle its intent; an agent who lists none takes
anything. The writes (the assignment, the rotation pointer) are in ``kefu.automation.actions``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q

from kefu.accounts.models import Agent
from kefu.automation.models import AgentRoutingState, InboxRouting, RoutingMode
from kefu.automation.sla import base_language
from kefu.conversations.models import Conversation, ConversationEvent, EventKind, Status

LOAD_STATUSES = (Status.NEW, Status.OPEN)


@dataclass(frozen=True, slots=True)
class Candidate:
    id: int
    capacity: int
    languages: frozenset[str]
    categories: frozenset[str]
    last_assigned_at: datetime | None = None

    def has_skills(self, language: str, intent: str) -> bool:
        if self.languages and language and base_language(language) not in self.languages:
            return False
        return not (self.categories and intent and intent not in self.categories)


def _skill_set(agent: Agent, key: str) -> frozenset[str]:
    values = (agent.skills or {}).get(key) or []
    if not isinstance(values, list):
        return frozenset()
    normalize = base_language if key == "languages" else str.lower
    return frozenset(normalize(str(v)) for v in values if v)


def candidates(routing: InboxRouting) -> list[Candidate]:
    """Available agents who may work the inbox, in id order (the rotation's order)."""
    agents = Agent.objects.filter(is_active=True, is_available=True)
    if routing.team_id is not None:
        agents = agents.filter(teams=routing.team_id)
    else:
        inbox_id = routing.inbox_id
        agents = agents.filter(Q(inboxes=inbox_id) | Q(teams__inboxes=inbox_id))
    rows = agents.distinct().order_by("pk")
    last = dict(
        AgentRoutingState.objects.filter(agent__in=rows).values_list("agent_id", "last_assigned_at")
    )
    return [
        Candidate(
            id=a.pk,
            capacity=a.capacity,
            languages=_skill_set(a, "languages"),
            categories=_skill_set(a, "categories"),
            last_assigned_at=last.get(a.pk),
        )
        for a in rows
    ]


def open_counts(agent_ids: Iterable[int]) -> dict[int, int]:
    rows = (
        Conversation.objects.filter(assignee_id__in=list(agent_ids), status__in=LOAD_STATUSES)
        .values("assignee_id")
        .annotate(n=Count("pk"))
    )
    return {row["assignee_id"]: row["n"] for row in rows}


def pick(
    *,
    mode: str,
    last_agent_id: int | None,
    people: list[Candidate],
    counts: dict[int, int],
    language: str,
    intent: str,
    use_skills: bool,
    fallback: bool,
) -> Candidate | None:
    """The agent for one conversation, or None when nobody can take it now."""
    eligible = [p for p in people if counts.get(p.id, 0) < p.capacity]
    if use_skills:
        skilled = [p for p in eligible if p.has_skills(language, intent)]
        if skilled or not fallback:
            eligible = skilled
    if not eligible:
        return None
    if mode == RoutingMode.ROUND_ROBIN:
        after = [p for p in eligible if last_agent_id is None or p.id > last_agent_id]
        return (after or eligible)[0]
    # Load balanced: the lightest load; among equals, who waited longest for work.
    return min(
        eligible,
        key=lambda p: (
            counts.get(p.id, 0) / max(p.capacity, 1),
            p.last_assigned_at.timestamp() if p.last_assigned_at else 0.0,
            p.id,
        ),
    )


@dataclass(frozen=True, slots=True)
class Fairness:
    """How evenly routing spread work: counts per agent, Jain's index (1.0 = perfectly even)
    and the coefficient of variation (0 = perfectly even)."""

    counts: dict[int, int]
    jain_index: float
    coefficient_of_variation: float
    total: int


def fairness_of(counts: dict[int, int]) -> Fairness:
    values = list(counts.values())
    total = sum(values)
    if not values or total == 0:
        return Fairness(counts, 1.0, 0.0, 0)
    n = len(values)
    squares = sum(v * v for v in values)
    mean = total / n
    deviation = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    return Fairness(
        counts, round(total * total / (n * squares), 4), round(deviation / mean, 4), total
    )


def measure_fairness(
    *, since: datetime, inbox_ids: list[int] | None = None, agent_ids: list[int] | None = None
) -> Fairness:
    """Assignments made by routing since ``since``, per agent (agents listed get 0 when idle)."""
    events = ConversationEvent.objects.filter(
        kind=EventKind.ASSIGNED, created_at__gte=since, data__routing__isnull=False
    )
    if inbox_ids is not None:
        events = events.filter(conversation__inbox_id__in=inbox_ids)
    counts: dict[int, int] = dict.fromkeys(agent_ids or [], 0)
    for assignee in events.values_list("data__to_assignee", flat=True):
        if assignee is not None:
            counts[int(assignee)] = counts.get(int(assignee), 0) + 1
    return fairness_of(counts)
