"""REST API for automation: SLA policies, business hours, rules (with dry run), templates,
routing, SLA state of conversations. Mounted under /api/v1/automation/.

Configuration is for team leads and admins (agents get 403 on those collections); templates,
the SLA-at-risk list and a conversation's SLA and rule log are for every agent, scoped to what
they can see (other ids are 404).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Router, Schema, Status

from kefu.accounts.models import Agent
from kefu.automation import actions, engine, routing, selectors
from kefu.automation.config import build_calendar
from kefu.automation.models import (
    BusinessHours,
    InboxRouting,
    Rule,
    SlaClock,
    SlaEvent,
    Template,
)
from kefu.conversations.selectors import (
    conversations_visible_to,
    get_conversation,
    get_inbox,
    visible_inbox_ids,
)
from kefu.core.errors import NotFound

router = Router(tags=["automation"])


def _user(request: HttpRequest) -> Agent:
    return request.auth  # type: ignore[attr-defined, return-value]


def _changes(payload: Schema) -> dict[str, Any]:
    return payload.dict(exclude_unset=True)


# --- SLA policies --------------------------------------------------------------------------------


class PolicyIn(Schema):
    name: str | None = None
    description: str | None = None
    is_active: bool | None = None
    position: int | None = None
    store_ids: list[int] | None = None
    inbox_kinds: list[str] | None = None
    inbox_ids: list[int] | None = None
    priorities: list[str] | None = None
    segments: list[str] | None = None
    intents: list[str] | None = None
    first_response_seconds: int | None = None
    next_response_seconds: int | None = None
    resolution_seconds: int | None = None
    clock: str | None = None
    pause_statuses: list[str] | None = None
    count_auto_replies: bool | None = None
    warn_percent: int | None = None


class PolicyOut(Schema):
    id: int
    name: str
    description: str
    is_active: bool
    position: int
    store_ids: list[int]
    inbox_kinds: list[str]
    inbox_ids: list[int]
    priorities: list[str]
    segments: list[str]
    intents: list[str]
    first_response_seconds: int | None
    next_response_seconds: int | None
    resolution_seconds: int | None
    clock: str
    pause_statuses: list[str]
    count_auto_replies: bool
    warn_percent: int


@router.get("/automation/sla-policies", response=list[PolicyOut])
def list_policies(request: HttpRequest):  # type: ignore[no-untyped-def]
    return list(selectors.policies_for(_user(request)))


@router.post("/automation/sla-policies", response={201: PolicyOut})
def create_policy(request: HttpRequest, payload: PolicyIn):  # type: ignore[no-untyped-def]
    return Status(201, actions.save_policy(actor=_user(request), data=_changes(payload)))


@router.get("/automation/sla-policies/{policy_id}", response=PolicyOut)
def get_policy(request: HttpRequest, policy_id: int):  # type: ignore[no-untyped-def]
    return selectors.get_policy(_user(request), policy_id)


@router.patch("/automation/sla-policies/{policy_id}", response=PolicyOut)
def update_policy(request: HttpRequest, policy_id: int, payload: PolicyIn):  # type: ignore[no-untyped-def]
    user = _user(request)
    policy = selectors.get_policy(user, policy_id)
    return actions.save_policy(actor=user, policy=policy, data=_changes(payload))


@router.delete("/automation/sla-policies/{policy_id}", response={204: None})
def delete_policy(request: HttpRequest, policy_id: int):  # type: ignore[no-untyped-def]
    user = _user(request)
    actions.delete_policy(actor=user, policy=selectors.get_policy(user, policy_id))
    return Status(204, None)


# --- Business hours ------------------------------------------------------------------------------


class HolidayOut(Schema):
    id: int
    date: date
    name: str
    annual: bool
    hours: list[list[str]]


class HolidayIn(Schema):
    date: date
    name: str
    annual: bool = False
    hours: list[list[str]] = Field(default_factory=list)


class HoursIn(Schema):
    store_id: int | None = None
    name: str | None = None
    timezone: str | None = None
    weekly: dict[str, list[list[str]]] | None = None
    public_holidays: bool | None = None
    holiday_country: str | None = None
    holiday_subdivision: str | None = None


class HoursOut(Schema):
    id: int
    store_id: int | None
    name: str
    timezone: str
    weekly: dict[str, list[list[str]]]
    public_holidays: bool
    holiday_country: str
    holiday_subdivision: str
    holidays: list[HolidayOut]

    @staticmethod
    def resolve_holidays(obj: BusinessHours) -> list[Any]:
        return list(obj.holidays.all())


class PreviewOut(Schema):
    start: datetime
    seconds: int
    due_at: datetime
    open_now: bool


@router.get("/automation/business-hours", response=list[HoursOut])
def list_hours(request: HttpRequest):  # type: ignore[no-untyped-def]
    return list(selectors.hours_for(_user(request)))


@router.post("/automation/business-hours", response={201: HoursOut})
def create_hours(request: HttpRequest, payload: HoursIn):  # type: ignore[no-untyped-def]
    data = _changes(payload)
    if data.get("store_id") is not None:
        from kefu.commerce.models import Store

        if not Store.objects.filter(pk=data["store_id"]).exists():
            raise NotFound(f"store {data['store_id']} not found")
    return Status(201, actions.save_business_hours(actor=_user(request), data=data))


@router.get("/automation/business-hours/{hours_id}", response=HoursOut)
def get_hours(request: HttpRequest, hours_id: int):  # type: ignore[no-untyped-def]
    return selectors.get_hours(_user(request), hours_id)


@router.patch("/automation/business-hours/{hours_id}", response=HoursOut)
def update_hours(request: HttpRequest, hours_id: int, payload: HoursIn):  # type: ignore[no-untyped-def]
    user = _user(request)
    hours = selectors.get_hours(user, hours_id)
    data = _changes(payload)
    data.pop("store_id", None)
    return actions.save_business_hours(actor=user, hours=hours, data=data)


@router.delete("/automation/business-hours/{hours_id}", response={204: None})
def delete_hours(request: HttpRequest, hours_id: int):  # type: ignore[no-untyped-def]
    user = _user(request)
    actions.delete_business_hours(actor=user, hours=selectors.get_hours(user, hours_id))
    return Status(204, None)


@router.post("/automation/business-hours/{hours_id}/holidays", response={201: HolidayOut})
def add_holiday(request: HttpRequest, hours_id: int, payload: HolidayIn):  # type: ignore[no-untyped-def]
    user = _user(request)
    hours = selectors.get_hours(user, hours_id)
    holiday = actions.add_holiday(
        actor=user,
        hours=hours,
        date=payload.date,
        name=payload.name,
        annual=payload.annual,
        open_hours=payload.hours,
    )
    return Status(201, holiday)


@router.delete("/automation/business-hours/{hours_id}/holidays/{holiday_id}", response={204: None})
def delete_holiday(request: HttpRequest, hours_id: int, holiday_id: int):  # type: ignore[no-untyped-def]
    user = _user(request)
    hours = selectors.get_hours(user, hours_id)
    holiday = hours.holidays.filter(pk=holiday_id).first()
    if holiday is None:
        raise NotFound(f"holiday {holiday_id} not found")
    actions.delete_holiday(actor=user, holiday=holiday)
    return Status(204, None)


@router.get("/automation/business-hours/{hours_id}/preview", response=PreviewOut)
def preview_hours(request: HttpRequest, hours_id: int, seconds: int, start: datetime | None = None):  # type: ignore[no-untyped-def]
    """When a target of ``seconds`` starting at ``start`` (default: now) would be due."""
    hours = selectors.get_hours(_user(request), hours_id)
    calendar = build_calendar(hours, hours.store)
    begin = start or timezone.now()
    return {
        "start": begin,
        "seconds": seconds,
        "due_at": calendar.add(begin, seconds),
        "open_now": calendar.is_open(timezone.now()),
    }


# --- Rules ---------------------------------------------------------------------------------------


class RuleIn(Schema):
    name: str | None = None
    description: str | None = None
    is_active: bool | None = None
    position: int | None = None
    trigger: str | None = None
    inbox_ids: list[int] | None = None
    conditions: dict[str, Any] | list[Any] | None = None
    actions: list[dict[str, Any]] | None = None
    options: dict[str, Any] | None = None
    stop_processing: bool | None = None


class RuleOut(Schema):
    id: int
    name: str
    description: str
    is_active: bool
    position: int
    trigger: str
    inbox_ids: list[int]
    conditions: dict[str, Any] | list[Any]
    actions: list[dict[str, Any]]
    options: dict[str, Any]
    stop_processing: bool
    updated_at: datetime

    @staticmethod
    def resolve_actions(obj: Rule) -> list[dict[str, Any]]:
        # Webhook secrets are write-only.
        return [{k: v for k, v in a.items() if k != "secret_encrypted"} for a in obj.actions]


class DryRunIn(RuleIn):
    rule_id: int | None = None
    last: int = 50


class DryRunRow(Schema):
    conversation_id: int
    matched: bool
    actions: list[str]


class DryRunOut(Schema):
    evaluated: int
    matched: int
    results: list[DryRunRow]


class ExecutionOut(Schema):
    id: int
    rule_id: int | None
    rule_name: str
    conversation_id: int
    trigger: str
    key: str
    depth: int
    ok: bool
    results: list[dict[str, Any]]
    created_at: datetime


@router.get("/automation/rules", response=list[RuleOut])
def list_rules(request: HttpRequest):  # type: ignore[no-untyped-def]
    return selectors.rules_for(_user(request))


@router.post("/automation/rules", response={201: RuleOut})
def create_rule(request: HttpRequest, payload: RuleIn):  # type: ignore[no-untyped-def]
    return Status(201, actions.save_rule(actor=_user(request), data=_changes(payload)))


@router.post("/automation/rules/dry-run", response=DryRunOut)
def dry_run(request: HttpRequest, payload: DryRunIn):  # type: ignore[no-untyped-def]
    """Evaluate a rule (saved: ``rule_id``; or the fields given) against the last N
    conversations you can see. Nothing is written."""
    user = _user(request)
    selectors.require_manager(user)
    data = _changes(payload)
    data.pop("last", None)
    rule_id = data.pop("rule_id", None)
    candidate = selectors.get_rule(user, rule_id) if rule_id else Rule(name="dry run")
    for name, value in data.items():
        setattr(candidate, name, value)
    if not candidate.actions:
        candidate.actions = [{"type": "close"}]  # a dry run may test conditions only
    actions.clean_rule(candidate)
    rows = engine.dry_run(
        rule=engine.compile_rule(candidate),
        conversations=conversations_visible_to(user),
        last=payload.last,
    )
    return {"evaluated": len(rows), "matched": sum(r["matched"] for r in rows), "results": rows}


@router.get("/automation/rules/{rule_id}", response=RuleOut)
def get_rule(request: HttpRequest, rule_id: int):  # type: ignore[no-untyped-def]
    return selectors.get_rule(_user(request), rule_id)


@router.patch("/automation/rules/{rule_id}", response=RuleOut)
def update_rule(request: HttpRequest, rule_id: int, payload: RuleIn):  # type: ignore[no-untyped-def]
    user = _user(request)
    rule = selectors.get_rule(user, rule_id)
    return actions.save_rule(actor=user, rule=rule, data=_changes(payload))


@router.delete("/automation/rules/{rule_id}", response={204: None})
def delete_rule(request: HttpRequest, rule_id: int):  # type: ignore[no-untyped-def]
    user = _user(request)
    actions.delete_rule(actor=user, rule=selectors.get_rule(user, rule_id))
    return Status(204, None)


@router.get("/automation/rules/{rule_id}/executions", response=list[ExecutionOut])
def rule_executions(request: HttpRequest, rule_id: int, limit: int = 100):  # type: ignore[no-untyped-def]
    user = _user(request)
    rule = selectors.get_rule(user, rule_id)
    visible = conversations_visible_to(user).values("pk")
    return list(
        rule.executions.filter(conversation_id__in=visible).order_by("-created_at", "-id")[
            : max(1, min(limit, 500))
        ]
    )


# --- Conversations: SLA state and rule log --------------------------------------------------------


class SlaEventOut(Schema):
    target: str
    kind: str
    due_at: datetime
    at: datetime
    met: bool | None
    elapsed_seconds: int | None


class ConversationSlaOut(Schema):
    conversation_id: int
    policy_id: int | None
    policy: str | None
    first_response_due_at: datetime | None
    next_response_due_at: datetime | None
    resolution_due_at: datetime | None
    paused: bool
    first_response_breached: bool | None
    next_response_met: int
    next_response_breaches: int
    resolution_breached: bool | None
    events: list[SlaEventOut]


@router.get("/automation/conversations/{conversation_id}/sla", response=ConversationSlaOut)
def conversation_sla(request: HttpRequest, conversation_id: int):  # type: ignore[no-untyped-def]
    conversation = get_conversation(_user(request), conversation_id)
    clock = SlaClock.objects.select_related("policy").filter(pk=conversation.pk).first()
    events = SlaEvent.objects.filter(conversation=conversation).order_by("at", "id")
    return {
        "conversation_id": conversation.pk,
        "policy_id": clock.policy_id if clock else None,
        "policy": clock.policy.name if clock and clock.policy else None,
        "first_response_due_at": conversation.first_response_due_at,
        "next_response_due_at": conversation.next_response_due_at,
        "resolution_due_at": conversation.resolution_due_at,
        "paused": bool(
            clock and any(t.get("remaining") is not None for t in clock.targets.values())
        ),
        "first_response_breached": clock.first_response_breached if clock else None,
        "next_response_met": clock.next_response_met if clock else 0,
        "next_response_breaches": clock.next_response_breaches if clock else 0,
        "resolution_breached": clock.resolution_breached if clock else None,
        "events": list(events),
    }


@router.get("/automation/conversations/{conversation_id}/executions", response=list[ExecutionOut])
def conversation_executions(request: HttpRequest, conversation_id: int):  # type: ignore[no-untyped-def]
    user = _user(request)
    conversation = get_conversation(user, conversation_id)
    return list(selectors.executions_of(user, conversation)[:200])


class AtRiskOut(Schema):
    id: int
    subject: str
    inbox_id: int
    status: str
    priority: str
    assignee_id: int | None
    first_response_due_at: datetime | None
    next_response_due_at: datetime | None
    resolution_due_at: datetime | None
    sla_due_at: datetime
    breached: bool


@router.get("/automation/sla/at-risk", response=list[AtRiskOut])
def sla_at_risk(request: HttpRequest, within_minutes: int = 60, limit: int = 100):  # type: ignore[no-untyped-def]
    """Active conversations with an SLA due within ``within_minutes`` or already breached."""
    now = timezone.now()
    rows = selectors.at_risk(
        _user(request),
        until=now + timedelta(minutes=max(0, within_minutes)),
        limit=max(1, min(limit, 500)),
    )
    return [
        {
            "id": c.pk,
            "subject": c.subject,
            "inbox_id": c.inbox_id,
            "status": c.status,
            "priority": c.priority,
            "assignee_id": c.assignee_id,
            "first_response_due_at": c.first_response_due_at,
            "next_response_due_at": c.next_response_due_at,
            "resolution_due_at": c.resolution_due_at,
            "sla_due_at": c.sla_due_at,  # type: ignore[attr-defined]
            "breached": c.sla_due_at <= now,  # type: ignore[attr-defined]
        }
        for c in rows
    ]


# --- Templates -----------------------------------------------------------------------------------


class TemplateIn(Schema):
    name: str | None = None
    shortcut: str | None = None
    description: str | None = None
    bodies: dict[str, str] | None = None
    default_language: str | None = None
    inbox_ids: list[int] | None = None
    is_active: bool | None = None
    set_tags: list[str] | None = None
    set_status: str | None = None
    assign_agent_id: int | None = None
    assign_team_id: int | None = None


class TemplateOut(Schema):
    id: int
    name: str
    shortcut: str
    description: str
    bodies: dict[str, str]
    default_language: str
    inbox_ids: list[int]
    is_active: bool
    set_tags: list[str]
    set_status: str
    assign_agent_id: int | None
    assign_team_id: int | None
    usage_count: int
    last_used_at: datetime | None


class TemplateUseIn(Schema):
    conversation_id: int
    language: str | None = None
    send: bool = False


class RenderedOut(Schema):
    text: str
    language: str
    message_id: int | None = None


@router.get("/automation/templates", response=list[TemplateOut])
def search_templates(request: HttpRequest, q: str = "", limit: int = 20):  # type: ignore[no-untyped-def]
    """Templates for the composer: by shortcut prefix or name, exact shortcut first, then the
    most used."""
    return selectors.templates_for(_user(request), q)[: max(1, min(limit, 200))]


@router.post("/automation/templates", response={201: TemplateOut})
def create_template(request: HttpRequest, payload: TemplateIn):  # type: ignore[no-untyped-def]
    user = _user(request)
    selectors.require_manager(user)
    return Status(201, actions.save_template(actor=user, data=_changes(payload)))


@router.get("/automation/templates/{template_id}", response=TemplateOut)
def get_template(request: HttpRequest, template_id: int):  # type: ignore[no-untyped-def]
    return selectors.get_template(_user(request), template_id)


@router.patch("/automation/templates/{template_id}", response=TemplateOut)
def update_template(request: HttpRequest, template_id: int, payload: TemplateIn):  # type: ignore[no-untyped-def]
    user = _user(request)
    selectors.require_manager(user)
    template = selectors.get_template(user, template_id)
    return actions.save_template(actor=user, template=template, data=_changes(payload))


@router.delete("/automation/templates/{template_id}", response={204: None})
def delete_template(request: HttpRequest, template_id: int):  # type: ignore[no-untyped-def]
    user = _user(request)
    selectors.require_manager(user)
    actions.delete_template(actor=user, template=selectors.get_template(user, template_id))
    return Status(204, None)


def _template_and_conversation(user: Agent, template_id: int, conversation_id: int):  # type: ignore[no-untyped-def]
    template: Template = selectors.get_template(user, template_id)
    conversation = get_conversation(user, conversation_id)
    if not template.is_active:
        raise NotFound(f"template {template_id} not found")
    return template, conversation


@router.post("/automation/templates/{template_id}/render", response=RenderedOut)
def render_template(request: HttpRequest, template_id: int, payload: TemplateUseIn):  # type: ignore[no-untyped-def]
    """Preview: the text for a conversation, in its customer's language when there is one."""
    user = _user(request)
    template, conversation = _template_and_conversation(user, template_id, payload.conversation_id)
    text, language = actions.render_template(
        template=template, conversation=conversation, agent=user, language=payload.language
    )
    return {"text": text, "language": language}


@router.post("/automation/templates/{template_id}/use", response=RenderedOut)
def use_template(request: HttpRequest, template_id: int, payload: TemplateUseIn):  # type: ignore[no-untyped-def]
    """Insert (and with ``send``, reply with) a template: counts the use and applies its tags,
    status and assignment."""
    user = _user(request)
    template, conversation = _template_and_conversation(user, template_id, payload.conversation_id)
    return actions.use_template(
        template=template,
        conversation=conversation,
        actor=user,
        send=payload.send,
        language=payload.language,
    )


# --- Routing -------------------------------------------------------------------------------------


class RoutingIn(Schema):
    mode: str | None = None
    team_id: int | None = None
    use_skills: bool | None = None
    skills_fallback: bool | None = None
    away_grace_minutes: int | None = None


class RoutingOut(Schema):
    inbox_id: int
    mode: str
    team_id: int | None
    use_skills: bool
    skills_fallback: bool
    away_grace_minutes: int


class FairnessOut(Schema):
    counts: dict[int, int]
    jain_index: float
    coefficient_of_variation: float
    total: int


@router.get("/automation/routing/fairness", response=FairnessOut)
def routing_fairness(request: HttpRequest, hours: int = 24, inbox_id: int | None = None):  # type: ignore[no-untyped-def]
    """How evenly routing spread work over the last ``hours`` (Jain's index: 1.0 is even)."""
    user = _user(request)
    selectors.require_manager(user)
    inboxes = [get_inbox(user, inbox_id).pk] if inbox_id else visible_inbox_ids(user)
    since = timezone.now() - timedelta(hours=max(1, hours))
    found = routing.measure_fairness(since=since, inbox_ids=list(inboxes))
    return _fairness_dict(found)


def _fairness_dict(found: routing.Fairness) -> dict[str, Any]:
    return {
        "counts": found.counts,
        "jain_index": found.jain_index,
        "coefficient_of_variation": found.coefficient_of_variation,
        "total": found.total,
    }


@router.get("/automation/routing/{inbox_id}", response=RoutingOut)
def get_routing(request: HttpRequest, inbox_id: int):  # type: ignore[no-untyped-def]
    user = _user(request)
    selectors.require_manager(user)
    inbox = get_inbox(user, inbox_id)
    return InboxRouting.objects.filter(inbox=inbox).first() or InboxRouting(inbox=inbox)


@router.put("/automation/routing/{inbox_id}", response=RoutingOut)
def set_routing(request: HttpRequest, inbox_id: int, payload: RoutingIn):  # type: ignore[no-untyped-def]
    user = _user(request)
    selectors.require_manager(user)
    inbox = get_inbox(user, inbox_id)
    return actions.set_routing(actor=user, inbox=inbox, data=_changes(payload))
