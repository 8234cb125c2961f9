"""Every write of the automation app goes through these functions.

- configuration (policies, business hours, holidays, rules, templates, routing): validated,
  saved, audited, and the configuration version bumped so every process recompiles;
- SLA clocks: the SLA fields of Conversation (the *_due_at fields and snoozed_until) are written
  only here, next to the SlaClock row, from the state-based computation in ``sla.recompute``;
- warnings and breaches (atomic claim per clock, each fires once), compliance records;
- rule executions and their actions (conversation changes through kefu.conversations.actions
  with actor None, the rule recorded in the events' data);
- routing assignments, template use.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from kefu.accounts.actions import audit
from kefu.accounts.models import Agent, Role, Team
from kefu.automation import config, engine, macros, routing, sla
from kefu.automation.calendar import Calendar, parse_intervals, parse_weekly, zone
from kefu.automation.conditions import compile_conditions
from kefu.automation.models import (
    AgentRoutingState,
    AutomationState,
    BusinessHours,
    Clock,
    Holiday,
    InboxRouting,
    RoutingMode,
    Rule,
    RuleExecution,
    SlaClock,
    SlaEvent,
    SlaEventKind,
    SlaPolicy,
    SlaTarget,
    Template,
    Trigger,
)
from kefu.conversations import actions as conversation_actions
from kefu.conversations.models import (
    ACTIVE_STATUSES,
    AuthorKind,
    Conversation,
    ConversationEvent,
    EventKind,
    Inbox,
    InboxKind,
    Priority,
    Status,
)
from kefu.conversations.selectors import visible_inbox_ids
from kefu.core.bulk import update_many
from kefu.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from kefu.core.events import emit

logger = logging.getLogger(__name__)

# --- Configuration: authorization and versioning -----------------------------------------------


def can_manage(actor: Agent | None, inbox_ids: Iterable[int] = ()) -> bool:
    """Admins manage everything; leads manage objects scoped to inboxes they can see; the system
    (actor None) may do anything."""
    if actor is None or actor.sees_every_inbox:
        return True
    ids = list(inbox_ids)
    if actor.role != Role.LEAD or not ids:
        return False
    visible = set(visible_inbox_ids(actor))
    return set(ids) <= visible


def _authorize(actor: Agent | None, inbox_ids: Iterable[int] = (), *, admin_only: bool = False):  # type: ignore[no-untyped-def]
    if admin_only and actor is not None and not actor.sees_every_inbox:
        raise Forbidden("only admins can change this")
    if not can_manage(actor, inbox_ids):
        raise Forbidden("leads can change rules and templates of their own inboxes only")


def bump_config() -> None:
    """Mark the configuration changed: other processes recompile within a second, this one at
    once (after commit, so a rolled-back change is never compiled)."""
    AutomationState.objects.get_or_create(name=config.CONFIG)
    AutomationState.objects.filter(name=config.CONFIG).update(number=F("number") + 1)
    transaction.on_commit(config.invalidate)
    config.invalidate()


def _inbox_ids(raw: Any) -> list[int]:
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise InvalidInput("inbox_ids must be a list of ids", field="inbox_ids")
    ids = sorted({int(i) for i in raw})
    found = set(Inbox.objects.filter(pk__in=ids).values_list("pk", flat=True))
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInput(f"inbox {missing[0]} not found", field="inbox_ids")
    return ids


def _string_list(raw: Any, field: str, allowed: Iterable[str] | None = None) -> list[str]:
    if raw in (None, ""):
        return []
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise InvalidInput(f"{field} must be a list of texts", field=field)
    values = [v.strip() for v in raw if v.strip()]
    if allowed is not None:
        bad = [v for v in values if v not in set(allowed)]
        if bad:
            raise InvalidInput(f"{field}: unknown value {bad[0]!r}", field=field)
    return list(dict.fromkeys(values))


def _apply(obj: Any, data: dict[str, Any], allowed: Iterable[str]) -> None:
    for name in allowed:
        if name in data:
            setattr(obj, name, data[name])


# --- SLA policies --------------------------------------------------------------------------------

POLICY_FIELDS = (
    "name",
    "description",
    "is_active",
    "position",
    "store_ids",
    "inbox_kinds",
    "inbox_ids",
    "priorities",
    "segments",
    "intents",
    "first_response_seconds",
    "next_response_seconds",
    "resolution_seconds",
    "clock",
    "pause_statuses",
    "count_auto_replies",
    "warn_percent",
)


def _clean_policy(policy: SlaPolicy) -> None:
    if not (policy.name or "").strip():
        raise InvalidInput("a policy needs a name", field="name")
    policy.inbox_kinds = _string_list(policy.inbox_kinds, "inbox_kinds", InboxKind.values)
    policy.priorities = _string_list(policy.priorities, "priorities", Priority.values)
    policy.pause_statuses = _string_list(
        policy.pause_statuses, "pause_statuses", [Status.PENDING, Status.ON_HOLD]
    )
    policy.segments = [s.lower() for s in _string_list(policy.segments, "segments")]
    policy.intents = _string_list(policy.intents, "intents")
    policy.inbox_ids = _inbox_ids(policy.inbox_ids)
    from kefu.commerce.models import Store

    stores = sorted({int(i) for i in policy.store_ids or []})
    if len(stores) != Store.objects.filter(pk__in=stores).count():
        raise InvalidInput("unknown store in store_ids", field="store_ids")
    policy.store_ids = stores
    if policy.clock not in Clock.values:
        raise InvalidInput(f"clock is one of {Clock.values}", field="clock")
    targets = (
        policy.first_response_seconds,
        policy.next_response_seconds,
        policy.resolution_seconds,
    )
    if not any(targets):
        raise InvalidInput("a policy needs at least one target", field="first_response_seconds")
    if any(t is not None and not 0 < t <= 366 * 86400 for t in targets):
        raise InvalidInput(
            "targets are between 1 second and a year", field="first_response_seconds"
        )
    if not 0 <= policy.warn_percent < 100:
        raise InvalidInput("warn_percent is between 0 and 99", field="warn_percent")


@transaction.atomic
def save_policy(*, actor: Agent | None, data: dict[str, Any], policy: SlaPolicy | None = None):  # type: ignore[no-untyped-def]
    """Create (``policy`` None) or update an SLA policy. Admins only."""
    _authorize(actor, admin_only=True)
    policy = policy or SlaPolicy()
    _apply(policy, data, POLICY_FIELDS)
    _clean_policy(policy)
    created = policy.pk is None
    policy.save()
    audit(actor=actor, action="sla_policy.created" if created else "sla_policy.updated", obj=policy)
    bump_config()
    return policy


@transaction.atomic
def delete_policy(*, actor: Agent | None, policy: SlaPolicy) -> None:
    _authorize(actor, admin_only=True)
    audit(actor=actor, action="sla_policy.deleted", obj=policy, name=policy.name)
    policy.delete()
    bump_config()


# --- Business hours and holidays ---------------------------------------------------------------

HOURS_FIELDS = (
    "name",
    "timezone",
    "weekly",
    "public_holidays",
    "holiday_country",
    "holiday_subdivision",
)


@transaction.atomic
def save_business_hours(  # type: ignore[no-untyped-def]
    *, actor: Agent | None, data: dict[str, Any], hours: BusinessHours | None = None
):
    """Create or update business hours (store None: the default). Admins only."""
    _authorize(actor, admin_only=True)
    hours = hours or BusinessHours()
    if "store_id" in data and hours.pk is None:
        hours.store_id = data["store_id"]
    _apply(hours, data, HOURS_FIELDS)
    if not (hours.name or "").strip():
        raise InvalidInput("business hours need a name", field="name")
    if hours.timezone:
        zone(hours.timezone)
    hours.holiday_country = (hours.holiday_country or "").upper()
    store = hours.store if hours.store_id else None
    Calendar(zone(hours.timezone or "UTC"), parse_weekly(hours.weekly))  # at least one interval
    if hours.public_holidays:
        country = hours.holiday_country or (store.country if store else "")
        if country:
            config.public_holidays(country, hours.holiday_subdivision)
    same_store = (
        BusinessHours.objects.filter(store__isnull=True)
        if hours.store_id is None
        else BusinessHours.objects.filter(store_id=hours.store_id)
    )
    duplicate = same_store.exclude(pk=hours.pk)
    if duplicate.exists():
        raise Conflict("this store already has business hours; edit them")
    created = hours.pk is None
    hours.save()
    audit(actor=actor, action="hours.created" if created else "hours.updated", obj=hours)
    bump_config()
    return hours


@transaction.atomic
def delete_business_hours(*, actor: Agent | None, hours: BusinessHours) -> None:
    _authorize(actor, admin_only=True)
    audit(actor=actor, action="hours.deleted", obj=hours, name=hours.name)
    hours.delete()
    bump_config()


@transaction.atomic
def add_holiday(  # type: ignore[no-untyped-def]
    *,
    actor: Agent | None,
    hours: BusinessHours,
    date,
    name: str,
    annual: bool = False,
    open_hours=None,
):
    """A closure (``open_hours`` empty) or a day with special hours."""
    _authorize(actor, admin_only=True)
    if not (name or "").strip():
        raise InvalidInput("a holiday needs a name", field="name")
    parse_intervals(open_hours or [], field_name="hours")
    holiday = Holiday.objects.create(
        business_hours=hours, date=date, name=name.strip(), annual=annual, hours=open_hours or []
    )
    audit(actor=actor, action="holiday.added", obj=hours, date=str(date), name=name)
    bump_config()
    return holiday


@transaction.atomic
def delete_holiday(*, actor: Agent | None, holiday: Holiday) -> None:
    _authorize(actor, admin_only=True)
    audit(actor=actor, action="holiday.deleted", obj=holiday.business_hours, date=str(holiday.date))
    holiday.delete()
    bump_config()


# --- Rules ---------------------------------------------------------------------------------------

RULE_FIELDS = (
    "name",
    "description",
    "is_active",
    "position",
    "trigger",
    "inbox_ids",
    "conditions",
    "actions",
    "options",
    "stop_processing",
)


def _check_action_targets(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ids in actions must exist; webhook secrets are stored encrypted."""
    from kefu.core.secrets import encrypt

    cleaned = []
    for i, spec in enumerate(specs):
        spec = dict(spec)
        where = f"actions[{i}]"
        if "agent_id" in spec and not Agent.objects.filter(pk=spec["agent_id"]).exists():
            raise InvalidInput(f"{where}: agent {spec['agent_id']} not found", field="actions")
        if "team_id" in spec and not Team.objects.filter(pk=spec["team_id"]).exists():
            raise InvalidInput(f"{where}: team {spec['team_id']} not found", field="actions")
        if "template_id" in spec and not Template.objects.filter(pk=spec["template_id"]).exists():
            raise InvalidInput(
                f"{where}: template {spec['template_id']} not found", field="actions"
            )
        if spec["type"] == "notify":
            macros.validate_body(spec["text"], f"{where}.text")
        if spec["type"] == "webhook" and spec.get("secret"):
            spec["secret_encrypted"] = encrypt(str(spec.pop("secret")))
        cleaned.append(spec)
    return cleaned


def clean_rule(rule: Rule) -> None:
    """Validate a rule in place (also used by dry runs of unsaved rules). Raises InvalidInput."""
    if not (rule.name or "").strip():
        raise InvalidInput("a rule needs a name", field="name")
    if rule.trigger not in Trigger.values:
        raise InvalidInput(f"trigger is one of {Trigger.values}", field="trigger")
    rule.inbox_ids = _inbox_ids(rule.inbox_ids)
    compile_conditions(rule.conditions)
    rule.actions = _check_action_targets(engine.validate_actions(rule.actions))
    rule.options = engine.validate_options(rule.trigger, rule.options)


@transaction.atomic
def save_rule(*, actor: Agent | None, data: dict[str, Any], rule: Rule | None = None) -> Rule:
    """Create or update a rule. Leads may only touch rules limited to their own inboxes."""
    if rule is not None:
        _authorize(actor, rule.inbox_ids)
    rule = rule or Rule(created_by=actor)
    _apply(rule, data, RULE_FIELDS)
    clean_rule(rule)
    _authorize(actor, rule.inbox_ids)
    created = rule.pk is None
    rule.save()
    audit(actor=actor, action="rule.created" if created else "rule.updated", obj=rule)
    bump_config()
    return rule


@transaction.atomic
def delete_rule(*, actor: Agent | None, rule: Rule) -> None:
    _authorize(actor, rule.inbox_ids)
    audit(actor=actor, action="rule.deleted", obj=rule, name=rule.name)
    rule.delete()
    bump_config()


# --- Templates -----------------------------------------------------------------------------------

TEMPLATE_FIELDS = (
    "name",
    "shortcut",
    "description",
    "bodies",
    "default_language",
    "inbox_ids",
    "is_active",
    "set_tags",
    "set_status",
    "assign_agent_id",
    "assign_team_id",
)


def _clean_template(template: Template) -> None:
    if not (template.name or "").strip():
        raise InvalidInput("a template needs a name", field="name")
    template.shortcut = (template.shortcut or "").strip().lower().lstrip("/")
    if not template.shortcut or not all(c.isalnum() or c in "-_" for c in template.shortcut):
        raise InvalidInput("a shortcut is letters, digits, - and _", field="shortcut")
    if Template.objects.filter(shortcut=template.shortcut).exclude(pk=template.pk).exists():
        raise Conflict(f"the shortcut {template.shortcut!r} is taken")
    template.bodies = macros.validate_bodies(template.bodies)
    template.default_language = (template.default_language or "").lower()
    if template.default_language not in template.bodies:
        template.default_language = next(iter(template.bodies))
    template.inbox_ids = _inbox_ids(template.inbox_ids)
    template.set_tags = _string_list(template.set_tags, "set_tags")
    if template.set_status and template.set_status not in Status.values:
        raise InvalidInput(f"set_status is one of {Status.values}", field="set_status")
    if template.assign_agent_id and not Agent.objects.filter(pk=template.assign_agent_id).exists():
        raise InvalidInput("agent not found", field="assign_agent_id")
    if template.assign_team_id and not Team.objects.filter(pk=template.assign_team_id).exists():
        raise InvalidInput("team not found", field="assign_team_id")


@transaction.atomic
def save_template(
    *, actor: Agent | None, data: dict[str, Any], template: Template | None = None
) -> Template:
    if template is not None:
        _authorize(actor, template.inbox_ids)
    template = template or Template(created_by=actor)
    _apply(template, data, TEMPLATE_FIELDS)
    _clean_template(template)
    _authorize(actor, template.inbox_ids)
    created = template.pk is None
    template.save()
    audit(actor=actor, action="template.created" if created else "template.updated", obj=template)
    return template


@transaction.atomic
def delete_template(*, actor: Agent | None, template: Template) -> None:
    _authorize(actor, template.inbox_ids)
    audit(actor=actor, action="template.deleted", obj=template, name=template.name)
    template.delete()


def render_template(
    *,
    template: Template,
    conversation: Conversation,
    agent: Agent | None = None,
    language: str | None = None,
    extra: dict[str, dict[str, Any]] | None = None,
) -> tuple[str, str]:
    """(text, language): the body in ``language``, else the conversation's or the customer's
    language when a version exists, else the default. Writes nothing."""
    wanted = [language or "", conversation.language, conversation.customer.language]
    code = macros.pick_language(template.bodies, wanted, template.default_language)
    values = macros.conversation_values(conversation, agent)
    for root, more in (extra or {}).items():
        values.setdefault(root, {}).update(more)
    return macros.render(template.bodies[code], values), code


def use_template(
    *,
    template: Template,
    conversation: Conversation,
    actor: Agent | None,
    send: bool = False,
    language: str | None = None,
) -> dict[str, Any]:
    """Use a template on a conversation: render it, count the use, apply its tags, status and
    assignment, and (``send``) reply with it. Returns {text, language, message_id}."""
    text, code = render_template(
        template=template, conversation=conversation, agent=actor, language=language
    )
    message_id = None
    with transaction.atomic():
        Template.objects.filter(pk=template.pk).update(
            usage_count=F("usage_count") + 1, last_used_at=timezone.now()
        )
        if send:
            author = AuthorKind.AGENT if actor is not None else AuthorKind.BOT
            message_id = conversation_actions.reply(
                conversation=conversation, actor=actor, text=text, author_kind=author
            ).pk
        if template.set_tags:
            conversation_actions.tag(
                conversation=conversation, actor=actor, names=template.set_tags
            )
        if template.assign_agent_id or template.assign_team_id:
            assignee = template.assign_agent or conversation.assignee
            conversation_actions.assign(
                conversation=conversation,
                actor=actor,
                assignee=assignee,
                team=template.assign_team,
            )
        if template.set_status:
            conversation_actions.set_status(
                conversation=conversation, actor=actor, status=template.set_status
            )
    return {"text": text, "language": code, "message_id": message_id}


# --- Routing configuration -----------------------------------------------------------------------


@transaction.atomic
def set_routing(*, actor: Agent | None, inbox: Inbox, data: dict[str, Any]) -> InboxRouting:
    _authorize(actor, [inbox.pk])
    found = InboxRouting.objects.select_for_update().filter(inbox=inbox).first()
    config_row = found or InboxRouting(inbox=inbox)
    _apply(
        config_row, data, ("mode", "team_id", "use_skills", "skills_fallback", "away_grace_minutes")
    )
    if config_row.mode not in RoutingMode.values:
        raise InvalidInput(f"mode is one of {RoutingMode.values}", field="mode")
    if config_row.team_id and not Team.objects.filter(pk=config_row.team_id).exists():
        raise InvalidInput("team not found", field="team_id")
    config_row.save()
    audit(actor=actor, action="routing.updated", obj=inbox, mode=config_row.mode)
    bump_config()
    return config_row


# --- SLA clocks ----------------------------------------------------------------------------------

_CONVERSATION_SLA_FIELDS = [
    "id",
    "inbox_id",
    "store_id",
    "status",
    "priority",
    "intent",
    "customer_id",
    "customer__tags",
    *sla.DUE_FIELDS.values(),
]


def _state(clock: SlaClock) -> sla.ClockState:
    return sla.ClockState(**{name: getattr(clock, name) for name in sla.CLOCK_FIELDS})


def _subject(conversation: Conversation, snapshot: config.Snapshot) -> sla.Subject:
    tags = getattr(conversation.customer, "tags", None) or []
    return sla.Subject(
        id=conversation.pk,
        inbox_id=conversation.inbox_id,
        inbox_kind=snapshot.inbox(conversation.inbox_id).kind,
        store_id=conversation.store_id,
        status=conversation.status,
        priority=conversation.priority,
        intent=conversation.intent,
        segments=frozenset(str(t).lower() for t in tags),
    )


def apply_inbound(state: sla.ClockState, sent_at: datetime) -> None:
    """A customer message: starts the clocks, and the customer waits unless answered since."""
    if state.started_at is None or sent_at < state.started_at:
        state.started_at = sent_at
    unanswered = state.last_responded_at is None or sent_at > state.last_responded_at
    if unanswered and state.awaiting_since is None:
        state.awaiting_since = sent_at


def apply_response(
    state: sla.ClockState, policy: sla.CompiledPolicy | None, author_kind: str, sent_at: datetime
) -> bool:
    """An outbound message: a response when the policy counts its author. Returns whether it
    counted."""
    if policy is not None and not policy.counts(author_kind):
        return False
    if state.first_responded_at is None:
        state.first_responded_at = sent_at
    if state.last_responded_at is None or sent_at > state.last_responded_at:
        state.last_responded_at = sent_at
    if state.awaiting_since is not None and state.awaiting_since <= sent_at:
        state.awaiting_since = None
    return True


@transaction.atomic
def refresh_sla(
    *,
    conversation_id: int,
    inbound_at: datetime | None = None,
    response: tuple[str, datetime] | None = None,
    now: datetime | None = None,
) -> sla.Outcome | None:
    """Recompute one conversation's SLA after an event and write what changed.

    ``inbound_at``: a customer message's time; ``response``: (author kind, time) of a reply.
    Locks the clock row, so concurrent refreshes of one conversation serialize. Returns None
    when the conversation is gone or merged away.
    """
    SlaClock.objects.bulk_create([SlaClock(conversation_id=conversation_id)], ignore_conflicts=True)
    clock = SlaClock.objects.select_for_update().get(pk=conversation_id)
    conversation = (
        Conversation.objects.select_related("customer")
        .only(*_CONVERSATION_SLA_FIELDS, "merged_into_id")
        .filter(pk=conversation_id)
        .first()
    )
    if conversation is None:
        return None
    return _refresh_locked(clock, conversation, inbound_at, response, now or timezone.now())


def _refresh_locked(
    clock: SlaClock,
    conversation: Conversation,
    inbound_at: datetime | None,
    response: tuple[str, datetime] | None,
    now: datetime,
    *,
    defer: list[tuple[SlaClock, Conversation, dict[str, datetime | None]]] | None = None,
) -> sla.Outcome:
    """Recompute one clock. With ``defer``, the clock and due-time writes are appended there
    for the caller to write in bulk; otherwise they are written now."""
    snapshot = config.current()
    policy = sla.choose(snapshot.policies, _subject(conversation, snapshot))
    state = _state(clock)
    before = asdict(state)
    if inbound_at is not None:
        apply_inbound(state, inbound_at)
    if response is not None:
        apply_response(state, policy, *response)
    calendar = snapshot.calendar(conversation.store_id)
    status = Status.CLOSED if conversation.merged_into_id else conversation.status
    outcome = sla.recompute(state, status=status, policy=policy, calendar=calendar, now=now)
    changed = asdict(state) != before
    if changed:
        for name in sla.CLOCK_FIELDS:
            setattr(clock, name, getattr(state, name))
    if defer is not None:
        defer.append((clock, conversation, outcome.due))
    else:
        if changed:
            clock.save()
        _write_due(conversation, outcome.due)
    _record_fulfilments(conversation.pk, state.policy_id, outcome.fulfilled)
    return outcome


def _write_due(conversation: Conversation, due: dict[str, datetime | None]) -> bool:
    changed = {name: value for name, value in due.items() if getattr(conversation, name) != value}
    if not changed:
        return False
    Conversation.objects.filter(pk=conversation.pk).update(**changed, updated_at=timezone.now())
    for name, value in changed.items():
        setattr(conversation, name, value)
    emit(
        "conversation.updated",
        conversation_id=conversation.pk,
        inbox_id=conversation.inbox_id,
        actor_id=None,
        changes=["sla"],
    )
    return True


def _record_fulfilments(
    conversation_id: int, policy_id: int | None, fulfilled: list[sla.Fulfilment]
) -> None:
    for done in fulfilled:
        SlaEvent.objects.bulk_create(
            [
                SlaEvent(
                    conversation_id=conversation_id,
                    policy_id=policy_id,
                    target=done.target,
                    kind=SlaEventKind.FULFILLED,
                    due_at=done.due_at,
                    at=done.at,
                    met=done.met,
                    elapsed_seconds=done.elapsed_seconds,
                )
            ],
            ignore_conflicts=True,
        )


def refresh_sla_many(*, inbound: dict[int, datetime], now: datetime | None = None) -> list[int]:
    """Recompute the SLA of many conversations after customer messages (the intake's bulk path):
    ``inbound`` maps conversation ids to their earliest new message time. One transaction.
    Returns the ids of conversations automation had not seen before (their first intake)."""
    if not inbound:
        return []
    now = now or timezone.now()
    ids = sorted(inbound)
    with transaction.atomic():
        known = set(SlaClock.objects.filter(pk__in=ids).values_list("pk", flat=True))
        SlaClock.objects.bulk_create(
            [SlaClock(conversation_id=i) for i in ids if i not in known], ignore_conflicts=True
        )
        clocks = {
            c.pk: c for c in SlaClock.objects.select_for_update().filter(pk__in=ids).order_by("pk")
        }
        conversations = (
            Conversation.objects.select_related("customer")
            .only(*_CONVERSATION_SLA_FIELDS, "merged_into_id")
            .filter(pk__in=ids)
        )
        first_seen = []
        writes: list[tuple[SlaClock, Conversation, dict[str, datetime | None]]] = []
        for conversation in conversations:
            clock = clocks[conversation.pk]
            if not clock.intake_done:
                first_seen.append(conversation.pk)
                clock.intake_done = True
            inbound_at = inbound[conversation.pk]
            _refresh_locked(clock, conversation, inbound_at, None, now, defer=writes)
        _write_many(writes)
    return first_seen


def _write_many(writes: list[tuple[SlaClock, Conversation, dict[str, datetime | None]]]) -> None:
    """The bulk path's writes: every clock in one statement per batch, changed due times too."""
    if not writes:
        return
    update_many([clock for clock, _, _ in writes], [*sla.CLOCK_FIELDS, "intake_done"])
    moved = []
    for _, conversation, due in writes:
        if any(getattr(conversation, name) != value for name, value in due.items()):
            for name, value in due.items():
                setattr(conversation, name, value)
            conversation.updated_at = timezone.now()
            moved.append(conversation)
    if moved:
        update_many(moved, [*sla.DUE_FIELDS.values(), "updated_at"])
    for conversation in moved:
        emit(
            "conversation.updated",
            conversation_id=conversation.pk,
            inbox_id=conversation.inbox_id,
            actor_id=None,
            changes=["sla"],
        )


# --- Warnings and breaches (the tick) -------------------------------------------------------------


def fire_due_sla(*, now: datetime | None = None, limit: int = 500) -> list[tuple[int, str, str]]:
    """Fire the warnings and breaches that are due. Safe with several workers at once: each
    clock is claimed in its own transaction (row lock skipping locked rows, and a re-check of
    ``next_check_at``), and a unique (conversation, target, kind, due) row records each event,
    so an event fires once. Returns (conversation id, target, kind) of what fired."""
    now = now or timezone.now()
    due = list(
        SlaClock.objects.filter(next_check_at__lte=now)
        .order_by("next_check_at")
        .values_list("pk", "next_check_at")[:limit]
    )
    fired: list[tuple[int, str, str]] = []
    for pk, check_at in due:
        if check_at is None:
            continue
        try:
            fired.extend(_fire_clock(pk, check_at, now))
        except Exception:
            logger.exception("SLA tick failed for conversation %s", pk)
    return fired


@transaction.atomic
def _fire_clock(pk: int, check_at: datetime, now: datetime) -> list[tuple[int, str, str]]:
    clock = (
        SlaClock.objects.select_for_update(skip_locked=True)
        .filter(pk=pk, next_check_at=check_at)
        .first()
    )
    if clock is None:
        return []  # another worker has it, or it changed since
    conversation = (
        Conversation.objects.select_related("customer")
        .only(*_CONVERSATION_SLA_FIELDS, "merged_into_id")
        .get(pk=pk)
    )
    _refresh_locked(clock, conversation, None, None, now)
    snapshot = config.current()
    policy = next((p for p in snapshot.policies if p.id == clock.policy_id), None)
    calendar = snapshot.calendar(conversation.store_id)
    state = _state(clock)
    moments = sla.due_moments(state, policy, calendar, now)
    if not moments:
        return []
    sla.mark_fired(state, policy, calendar, moments)
    fired = []
    for when, target, kind, due_iso in moments:
        if _record_alert(conversation, clock.policy_id, target, kind, due_iso, when):
            fired.append((pk, target, kind))
            if kind == SlaEventKind.BREACH:
                _mark_breached(state, target)
    for name in sla.CLOCK_FIELDS:
        setattr(clock, name, getattr(state, name))
    clock.save()
    return fired


def _mark_breached(state: sla.ClockState, target: str) -> None:
    if target == SlaTarget.FIRST_RESPONSE:
        state.first_response_breached = True
    elif target == SlaTarget.RESOLUTION:
        state.resolution_breached = True


def _record_alert(
    conversation: Conversation,
    policy_id: int | None,
    target: str,
    kind: str,
    due_iso: str,
    when: datetime,
) -> bool:
    """Insert the warning or breach once; False when it already fired (another worker)."""
    due_at = datetime.fromisoformat(due_iso)
    try:
        with transaction.atomic():
            SlaEvent.objects.create(
                conversation_id=conversation.pk,
                policy_id=policy_id,
                target=target,
                kind=kind,
                due_at=due_at,
                at=when,
            )
    except IntegrityError:
        return False
    data = {"target": target, "due_at": due_iso, "policy": policy_id, "stage": kind}
    if kind == SlaEventKind.BREACH:
        ConversationEvent.objects.create(
            conversation_id=conversation.pk, kind=EventKind.SLA_BREACHED, data=data
        )
    emit(
        "sla.breached" if kind == SlaEventKind.BREACH else "sla.warning",
        conversation_id=conversation.pk,
        inbox_id=conversation.inbox_id,
        target=target,
        due_at=due_iso,
    )
    return True


# --- Snooze --------------------------------------------------------------------------------------


@transaction.atomic
def snooze(*, conversation: Conversation, actor: Agent | None, until: datetime) -> Conversation:
    """Put a conversation aside until ``until``: status pending, and back to open then (or when
    the customer writes)."""
    if until <= timezone.now():
        raise InvalidInput("snooze until a moment in the future", field="until")
    conversation = conversation_actions.set_status(
        conversation=conversation, actor=actor, status=Status.PENDING
    )
    Conversation.objects.filter(pk=conversation.pk).update(snoozed_until=until)
    conversation.snoozed_until = until
    return conversation


def wake_snoozed(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Reopen snoozed conversations whose time has come; clear the snooze of those the customer
    already reopened."""
    now = now or timezone.now()
    woken = []
    rows = Conversation.objects.filter(snoozed_until__lte=now).order_by("snoozed_until")[:limit]
    for conversation in rows:
        with transaction.atomic():
            claimed = Conversation.objects.filter(
                pk=conversation.pk, snoozed_until=conversation.snoozed_until
            ).update(snoozed_until=None)
            if not claimed:
                continue
            if conversation.status in (Status.PENDING, Status.ON_HOLD):
                conversation_actions.set_status(
                    conversation=conversation, actor=None, status=Status.OPEN
                )
                woken.append(conversation.pk)
    return woken


# --- Rule executions -----------------------------------------------------------------------------


def start_rule_execution(
    *, rule_id: int, rule_name: str, conversation_id: int, trigger: str, key: str, depth: int
) -> RuleExecution | None:
    """Log the start of an execution; None when ``key`` already ran for this rule."""
    try:
        with transaction.atomic():
            return RuleExecution.objects.create(
                rule_id=rule_id,
                rule_name=rule_name,
                conversation_id=conversation_id,
                trigger=trigger,
                key=key[:120],
                depth=depth,
            )
    except IntegrityError:
        return None


def finish_rule_execution(*, execution: RuleExecution, results: list[dict[str, Any]]) -> None:
    ok = all(r.get("ok", True) for r in results)
    RuleExecution.objects.filter(pk=execution.pk).update(results=results, ok=ok)


def perform_rule_action(
    *, rule_id: int, rule_name: str, spec: dict[str, Any], conversation_id: int
) -> dict[str, Any]:
    """Carry out one action of a rule on a conversation (as the system). Raises KefuError."""
    conversation = (
        Conversation.objects.select_related("inbox", "customer", "store", "assignee")
        .filter(pk=conversation_id)
        .first()
    )
    if conversation is None:
        raise NotFound("the conversation is gone")
    if conversation.merged_into_id is not None:
        raise Conflict("the conversation was merged")
    with conversation_actions.on_behalf_of({"rule": {"id": rule_id, "name": rule_name}}):
        outcome = _RULE_ACTIONS[spec["type"]](conversation, spec, rule_id)
    return outcome or {}


def _agent(agent_id: int) -> Agent:
    agent = Agent.objects.filter(pk=agent_id, is_active=True).first()
    if agent is None:
        raise InvalidInput(f"agent {agent_id} not found", field="agent_id")
    return agent


def _team(team_id: int) -> Team:
    team = Team.objects.filter(pk=team_id).first()
    if team is None:
        raise InvalidInput(f"team {team_id} not found", field="team_id")
    return team


def _do_assign_agent(c: Conversation, spec: dict, rule_id: int) -> dict:
    conversation_actions.assign(conversation=c, actor=None, assignee=_agent(spec["agent_id"]))
    return {"assignee": spec["agent_id"]}


def _do_assign_team(c: Conversation, spec: dict, rule_id: int) -> dict:
    team = _team(spec["team_id"])
    conversation_actions.assign(conversation=c, actor=None, assignee=c.assignee, team=team)
    return {"team": team.pk}


def _do_route(c: Conversation, spec: dict, rule_id: int) -> dict:
    agent = route_conversation(conversation_id=c.pk, force=True)
    return {"assignee": agent.pk if agent else None}


def _do_unassign(c: Conversation, spec: dict, rule_id: int) -> dict:
    conversation_actions.assign(conversation=c, actor=None, assignee=None)
    return {}


def _do_priority(c: Conversation, spec: dict, rule_id: int) -> dict:
    conversation_actions.set_priority(conversation=c, actor=None, priority=spec["priority"])
    return {"priority": spec["priority"]}


def _do_status(c: Conversation, spec: dict, rule_id: int) -> dict:
    conversation_actions.set_status(conversation=c, actor=None, status=spec["status"])
    return {"status": spec["status"]}


def _do_add_tags(c: Conversation, spec: dict, rule_id: int) -> dict:
    return {"added": conversation_actions.tag(conversation=c, actor=None, names=spec["tags"])}


def _do_remove_tags(c: Conversation, spec: dict, rule_id: int) -> dict:
    return {"removed": conversation_actions.untag(conversation=c, actor=None, names=spec["tags"])}


def _template(template_id: int) -> Template:
    template = Template.objects.filter(pk=template_id, is_active=True).first()
    if template is None:
        raise InvalidInput(f"template {template_id} not found or inactive", field="template_id")
    return template


def _do_reply(c: Conversation, spec: dict, rule_id: int) -> dict:
    template = _template(spec["template_id"])
    text, language = render_template(template=template, conversation=c)
    message = conversation_actions.reply(
        conversation=c, actor=None, text=text, author_kind=AuthorKind.BOT, status=spec.get("status")
    )
    Template.objects.filter(pk=template.pk).update(
        usage_count=F("usage_count") + 1, last_used_at=timezone.now()
    )
    return {"message_id": message.pk, "language": language}


def _do_note(c: Conversation, spec: dict, rule_id: int) -> dict:
    if spec.get("template_id"):
        text, _ = render_template(template=_template(spec["template_id"]), conversation=c)
    else:
        text = spec["text"]  # admin-written; kept as plain text, never rendered
    note = conversation_actions.add_note(conversation=c, actor=None, text=text)  # type: ignore[arg-type]
    return {"message_id": note.pk}


def _do_notify(c: Conversation, spec: dict, rule_id: int) -> dict:
    recipients = {int(i) for i in spec.get("agent_ids") or []}
    if spec.get("team_id"):
        recipients |= set(_team(spec["team_id"]).members.values_list("pk", flat=True))
    if spec.get("assignee") and c.assignee_id:
        recipients.add(c.assignee_id)
    text = macros.render(spec["text"], macros.conversation_values(c))
    emit(
        "automation.notify",
        conversation_id=c.pk,
        agent_ids=sorted(recipients),
        text=text,
        rule_id=rule_id,
    )
    return {"agent_ids": sorted(recipients)}


def _do_webhook(c: Conversation, spec: dict, rule_id: int) -> dict:
    from kefu.automation.tasks import call_webhook

    payload = {
        "event": "rule",
        "rule_id": rule_id,
        "conversation": {
            "id": c.pk,
            "inbox_id": c.inbox_id,
            "status": c.status,
            "priority": c.priority,
            "language": c.language,
            "intent": c.intent,
            "subject": c.subject,
            "assignee_id": c.assignee_id,
        },
    }
    transaction.on_commit(
        lambda: call_webhook.enqueue(spec["url"], payload, spec.get("secret_encrypted", ""))
    )
    return {"queued": True}


def _do_snooze(c: Conversation, spec: dict, rule_id: int) -> dict:
    until = timezone.now() + timedelta(minutes=spec["minutes"])
    snooze(conversation=c, actor=None, until=until)
    return {"until": until.isoformat()}


def _do_close(c: Conversation, spec: dict, rule_id: int) -> dict:
    conversation_actions.set_status(conversation=c, actor=None, status=Status.CLOSED)
    return {"status": Status.CLOSED}


_RULE_ACTIONS = {
    "assign_agent": _do_assign_agent,
    "assign_team": _do_assign_team,
    "route": _do_route,
    "unassign": _do_unassign,
    "set_priority": _do_priority,
    "set_status": _do_status,
    "add_tags": _do_add_tags,
    "remove_tags": _do_remove_tags,
    "reply": _do_reply,
    "note": _do_note,
    "notify": _do_notify,
    "webhook": _do_webhook,
    "snooze": _do_snooze,
    "close": _do_close,
}


# --- Routing -------------------------------------------------------------------------------------


@transaction.atomic
def route_conversation(*, conversation_id: int, force: bool = False) -> Agent | None:
    """Assign an unassigned, active conversation by its inbox's routing; None when routing is
    off (unless ``force``: then round robin over the inbox's agents), or nobody can take it.

    Locks the inbox's routing row, then the conversation: of two workers routing at once, the
    second waits and finds the conversation assigned, so nothing is assigned twice and the
    rotation advances once per assignment.
    """
    conversation = Conversation.objects.filter(pk=conversation_id).only("inbox_id").first()
    if conversation is None:
        return None
    InboxRouting.objects.get_or_create(inbox_id=conversation.inbox_id)
    setup = InboxRouting.objects.select_for_update().get(inbox_id=conversation.inbox_id)
    mode = setup.mode
    if mode == RoutingMode.OFF:
        if not force:
            return None
        mode = RoutingMode.ROUND_ROBIN
    conversation = (
        Conversation.objects.select_for_update()
        .filter(
            pk=conversation_id,
            assignee__isnull=True,
            merged_into__isnull=True,
            status__in=routing.LOAD_STATUSES,
        )
        .first()
    )
    if conversation is None:
        return None
    return _assign_next(setup, mode, conversation)


def _assign_next(setup: InboxRouting, mode: str, conversation: Conversation) -> Agent | None:
    people = routing.candidates(setup)
    if not people:
        return None
    # Lock the candidates' routing state in id order: capacity counts stay true while routers
    # of other inboxes sharing these agents run at the same time.
    AgentRoutingState.objects.bulk_create(
        [AgentRoutingState(agent_id=p.id) for p in people], ignore_conflicts=True
    )
    list(
        AgentRoutingState.objects.select_for_update()
        .filter(agent_id__in=[p.id for p in people])
        .order_by("agent_id")
    )
    chosen = routing.pick(
        mode=mode,
        last_agent_id=setup.last_agent_id,
        people=people,
        counts=routing.open_counts(p.id for p in people),
        language=conversation.language,
        intent=conversation.intent,
        use_skills=setup.use_skills,
        fallback=setup.skills_fallback,
    )
    if chosen is None:
        return None
    agent = Agent.objects.get(pk=chosen.id)
    with conversation_actions.on_behalf_of({"routing": mode}):
        conversation_actions.assign(
            conversation=conversation, actor=None, assignee=agent, team=setup.team
        )
    now = timezone.now()
    InboxRouting.objects.filter(pk=setup.pk).update(last_agent_id=agent.pk, updated_at=now)
    setup.last_agent_id = agent.pk
    AgentRoutingState.objects.filter(agent=agent).update(
        last_assigned_at=now, assigned_total=F("assigned_total") + 1
    )
    return agent


def route_queue(*, inbox_id: int, limit: int = 200) -> list[tuple[int, int]]:
    """Route the inbox's unassigned active conversations, longest waiting first, until nobody
    has capacity. Returns (conversation id, agent id) pairs."""
    queue = list(
        Conversation.objects.filter(
            inbox_id=inbox_id,
            assignee__isnull=True,
            merged_into__isnull=True,
            status__in=routing.LOAD_STATUSES,
        )
        .order_by(F("waiting_since").asc(nulls_last=True), "pk")
        .values_list("pk", flat=True)[:limit]
    )
    done = []
    for conversation_id in queue:
        agent = route_conversation(conversation_id=conversation_id)
        if agent is None:
            if not _anyone_free(inbox_id):
                break
            continue
        done.append((conversation_id, agent.pk))
    return done


def _anyone_free(inbox_id: int) -> bool:
    setup = InboxRouting.objects.filter(inbox_id=inbox_id).first()
    if setup is None or setup.mode == RoutingMode.OFF:
        return False
    people = routing.candidates(setup)
    counts = routing.open_counts(p.id for p in people)
    return any(counts.get(p.id, 0) < p.capacity for p in people)


def return_work_of_away_agents(*, now: datetime | None = None) -> list[int]:
    """Agents marked unavailable are noted as away; past their inboxes' grace time, their new
    and open conversations in routed inboxes go back to the queue (and are routed again).
    Returns the conversation ids returned."""
    now = now or timezone.now()
    away = list(Agent.objects.filter(is_available=False).values_list("pk", flat=True))
    AgentRoutingState.objects.bulk_create(
        [AgentRoutingState(agent_id=pk) for pk in away], ignore_conflicts=True
    )
    AgentRoutingState.objects.filter(agent_id__in=away, away_since__isnull=True).update(
        away_since=now
    )
    AgentRoutingState.objects.exclude(agent_id__in=away).filter(away_since__isnull=False).update(
        away_since=None
    )
    returned = []
    routed = InboxRouting.objects.exclude(mode=RoutingMode.OFF)
    for setup in routed:
        limit = now - timedelta(minutes=setup.away_grace_minutes)
        gone = AgentRoutingState.objects.filter(agent_id__in=away, away_since__lte=limit)
        rows = Conversation.objects.filter(
            inbox_id=setup.inbox_id,
            assignee_id__in=gone.values("agent_id"),
            status__in=routing.LOAD_STATUSES,
        ).values_list("pk", flat=True)
        for conversation_id in list(rows[:500]):
            if _unassign_away(conversation_id, away):
                returned.append(conversation_id)
        if returned:
            route_queue(inbox_id=setup.inbox_id)
    return returned


@transaction.atomic
def _unassign_away(conversation_id: int, away: list[int]) -> bool:
    conversation = (
        Conversation.objects.select_for_update()
        .filter(pk=conversation_id, assignee_id__in=away, status__in=routing.LOAD_STATUSES)
        .first()
    )
    if conversation is None:
        return False
    with conversation_actions.on_behalf_of({"routing": "returned_to_queue"}):
        conversation_actions.assign(conversation=conversation, actor=None, assignee=None)
    return True


# --- Time-based rules ----------------------------------------------------------------------------


def run_time_rules(*, now: datetime | None = None, per_rule: int = 200) -> list[int]:
    """Run "time since an event" rules: conversations whose anchor (last message, waiting since...)
    is older than the rule's hours, once per anchor value. Returns execution ids."""
    now = now or timezone.now()
    snapshot = config.current()
    done: list[int] = []
    for rule in snapshot.rules_for(Trigger.TIME_ELAPSED):
        anchor = engine.TIME_ANCHORS[rule.options["since"]]
        limit = now - timedelta(hours=float(rule.options["hours"]))
        rows = Conversation.objects.filter(
            status__in=ACTIVE_STATUSES,
            merged_into__isnull=True,
            **{f"{anchor}__lte": limit, f"{anchor}__gte": limit - timedelta(days=30)},
        ).select_related("customer")
        if rule.inbox_ids:
            rows = rows.filter(inbox_id__in=rule.inbox_ids)
        # Once per anchor value: an execution after the anchor means this one was handled.
        handled = RuleExecution.objects.filter(
            rule_id=rule.id, conversation=OuterRef("pk"), created_at__gte=OuterRef(anchor)
        )
        rows = rows.exclude(Exists(handled)).order_by(anchor)[:per_rule]
        for conversation in rows:
            key = f"time:{getattr(conversation, anchor).isoformat()}"
            facts = engine.facts_for(conversation, snapshot=snapshot)
            if rule.applies(facts):
                found = engine.execute(rule, conversation.pk, trigger=rule.trigger, key=key)
                if found is not None:
                    done.append(found)
    return done
