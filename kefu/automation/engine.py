"""The rules engine: compiled rules, evaluation, execution with loop protection, dry runs.

Evaluation is in memory over :class:`Facts`; rules come precompiled from
``kefu.automation.config``. Rules of a trigger run in order (position, id); a matching rule with
``stop_processing`` ends the evaluation for that event. Execution goes through
``kefu.conversations.actions`` (actor None: the system) and ``kefu.automation.actions``; each
execution is logged (RuleExecution) and the conversation events it caused carry the rule in
their data.

Loop protection: the rules running in this call chain are kept in a context variable. Domain
events dispatch synchronously when an action commits, so a rule's own changes reach the
handlers inside its chain: a rule never fires again on its own changes, nor on changes caused
by a rule it started (no A -> B -> A), and chains stop at ``MAX_DEPTH``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import OuterRef, Subquery
from django.utils import timezone

from kefu.automation import config
from kefu.automation.conditions import CompiledConditions, Facts, compile_conditions
from kefu.automation.models import Rule, Trigger
from kefu.conversations.models import Conversation, Direction, Message, Priority, Status
from kefu.core.errors import InvalidInput, KefuError

logger = logging.getLogger(__name__)

MAX_DEPTH = 3
MAX_ACTIONS = 20
DRY_RUN_MAX = 500
TIME_ANCHORS = {
    "created_at": "created_at",
    "last_message_at": "last_message_at",
    "last_inbound_at": "last_inbound_at",
    "waiting_since": "waiting_since",
    "updated_at": "updated_at",
    "solved_at": "solved_at",
}

_chain: ContextVar[tuple[int, ...]] = ContextVar("kefu_rule_chain", default=())


def current_chain() -> tuple[int, ...]:
    return _chain.get()


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: int
    name: str
    trigger: str
    inbox_ids: frozenset[int]
    check: CompiledConditions
    actions: tuple[dict[str, Any], ...]
    stop: bool
    options: dict[str, Any]

    def applies(self, facts: Facts) -> bool:
        if self.inbox_ids and facts.inbox_id not in self.inbox_ids:
            return False
        return self.check(facts)


# --- Validation and compilation ----------------------------------------------------------------


def _require(spec: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = spec.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise InvalidInput(f"{where}: {key} is required", field="actions")
    return value


def validate_action(spec: Any, where: str) -> dict[str, Any]:
    """Check an action's shape (ids are checked against the database by the actions module)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise InvalidInput(f"{where}: an action is {{type, ...}}", field="actions")
    kind = spec["type"]
    if kind == "assign_agent":
        _require(spec, "agent_id", int, where)
    elif kind == "assign_team":
        _require(spec, "team_id", int, where)
    elif kind == "set_priority":
        if spec.get("priority") not in Priority.values:
            raise InvalidInput(f"{where}: priority is one of {Priority.values}", field="actions")
    elif kind == "set_status":
        if spec.get("status") not in Status.values:
            raise InvalidInput(f"{where}: status is one of {Status.values}", field="actions")
    elif kind in ("add_tags", "remove_tags"):
        tags = _require(spec, "tags", list, where)
        if not tags or not all(isinstance(t, str) and t.strip() for t in tags):
            raise InvalidInput(f"{where}: tags is a list of names", field="actions")
    elif kind == "reply":
        _require(spec, "template_id", int, where)
        if spec.get("status") not in (None, *Status.values):
            raise InvalidInput(f"{where}: unknown status", field="actions")
    elif kind == "note":
        if not isinstance(spec.get("template_id"), int) and not isinstance(spec.get("text"), str):
            raise InvalidInput(f"{where}: a note needs template_id or text", field="actions")
    elif kind == "notify":
        _require(spec, "text", str, where)
        if not (spec.get("agent_ids") or spec.get("team_id") or spec.get("assignee")):
            raise InvalidInput(
                f"{where}: notify whom? agent_ids, team_id or assignee", field="actions"
            )
    elif kind == "webhook":
        url = _require(spec, "url", str, where)
        if not url.startswith(("https://", "http://")):
            raise InvalidInput(f"{where}: the webhook url must be http(s)", field="actions")
    elif kind == "snooze":
        minutes = spec.get("minutes")
        if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= 43200:
            raise InvalidInput(f"{where}: minutes between 1 and 43200 (30 days)", field="actions")
    elif kind not in ("route", "unassign", "close"):
        raise InvalidInput(f"{where}: unknown action {kind!r}", field="actions")
    return spec


def validate_actions(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("a rule needs at least one action", field="actions")
    if len(raw) > MAX_ACTIONS:
        raise InvalidInput(f"at most {MAX_ACTIONS} actions", field="actions")
    return [validate_action(spec, f"actions[{i}]") for i, spec in enumerate(raw)]


def validate_options(trigger: str, raw: Any) -> dict[str, Any]:
    options = dict(raw or {})
    if trigger == Trigger.TIME_ELAPSED:
        if options.get("since") not in TIME_ANCHORS:
            raise InvalidInput(f"options.since is one of {sorted(TIME_ANCHORS)}", field="options")
        hours = options.get("hours")
        if not isinstance(hours, int | float) or isinstance(hours, bool) or not 0 < hours <= 8760:
            raise InvalidInput("options.hours between 0 and 8760", field="options")
    return options


def compile_rule(rule: Rule) -> CompiledRule:
    if rule.trigger not in Trigger.values:
        raise InvalidInput(f"unknown trigger {rule.trigger!r}", field="trigger")
    return CompiledRule(
        id=rule.pk,
        name=rule.name,
        trigger=rule.trigger,
        inbox_ids=frozenset(int(i) for i in rule.inbox_ids or []),
        check=compile_conditions(rule.conditions),
        actions=tuple(validate_actions(rule.actions)),
        stop=rule.stop_processing,
        options=validate_options(rule.trigger, rule.options),
    )


def compile_rules(rules: Iterable[Rule]) -> dict[str, tuple[CompiledRule, ...]]:
    by_trigger: dict[str, list[CompiledRule]] = {}
    for rule in rules:
        try:
            compiled = compile_rule(rule)
        except InvalidInput as exc:
            # Rules are validated when saved; one that no longer compiles is skipped loudly.
            logger.error("rule %s (%s) skipped: %s", rule.pk, rule.name, exc.message)
            continue
        by_trigger.setdefault(compiled.trigger, []).append(compiled)
    return {trigger: tuple(found) for trigger, found in by_trigger.items()}


# --- Evaluation --------------------------------------------------------------------------------


def matching(rules: Iterable[CompiledRule], facts: Facts) -> list[CompiledRule]:
    """The rules that apply, in order, up to and including the first that stops processing."""
    found = []
    for rule in rules:
        if rule.applies(facts):
            found.append(rule)
            if rule.stop:
                break
    return found


def facts_for(
    conversation: Conversation,
    *,
    snapshot: config.Snapshot,
    text: str = "",
    changes: Iterable[str] = (),
    sla_target: str = "",
    event: str = "",
    tags: Iterable[str] | None = None,
) -> Facts:
    info = snapshot.inbox(conversation.inbox_id)
    now = timezone.now()
    customer_tags = getattr(conversation.customer, "tags", None) or []
    return Facts(
        conversation_id=conversation.pk,
        inbox_id=conversation.inbox_id,
        inbox_kind=info.kind,
        store_id=conversation.store_id,
        status=conversation.status,
        priority=conversation.priority,
        language=conversation.language,
        intent=conversation.intent,
        sentiment=conversation.sentiment,
        assignee_id=conversation.assignee_id,
        team_id=conversation.team_id,
        subject=conversation.subject,
        text=text,
        segments=frozenset(str(t).lower() for t in customer_tags),
        changes=frozenset(changes),
        sla_target=sla_target,
        event=event,
        now=now,
        tags_loader=(lambda: tags) if tags is not None else _tag_loader(conversation.pk),
        open_now=lambda: snapshot.calendar(conversation.store_id).is_open(now),
    )


def _tag_loader(conversation_id: int):  # type: ignore[no-untyped-def]
    def load() -> list[str]:
        return list(
            Conversation.tags.through.objects.filter(conversation_id=conversation_id).values_list(
                "tag__name", flat=True
            )
        )

    return load


# --- Execution ---------------------------------------------------------------------------------


def run(trigger: str, facts: Facts, *, key: str = "") -> list[int]:
    """Evaluate the rules of ``trigger`` against ``facts`` and execute those that match.

    ``key`` makes a rule act at most once for the same occurrence (a message id, an SLA due time);
    returns the ids of the executions recorded.
    """
    chain = _chain.get()
    if len(chain) >= MAX_DEPTH:
        logger.warning("rule chain %s reached the depth limit; %s not evaluated", chain, trigger)
        return []
    rules = [r for r in config.current().rules_for(trigger) if r.id not in chain]
    if not rules:
        return []
    done = []
    for rule in matching(rules, facts):
        execution_id = execute(rule, facts.conversation_id, trigger=trigger, key=key)
        if execution_id is not None:
            done.append(execution_id)
    return done


def execute(rule: CompiledRule, conversation_id: int, *, trigger: str, key: str) -> int | None:
    """Run ``rule``'s actions on a conversation; None when this occurrence already ran."""
    from kefu.automation import actions

    chain = _chain.get()
    execution = actions.start_rule_execution(
        rule_id=rule.id,
        rule_name=rule.name,
        conversation_id=conversation_id,
        trigger=trigger,
        key=key,
        depth=len(chain),
    )
    if execution is None:
        return None
    token = _chain.set((*chain, rule.id))
    results = []
    try:
        for spec in rule.actions:
            results.append(_perform(rule, spec, conversation_id))
    finally:
        _chain.reset(token)
    actions.finish_rule_execution(execution=execution, results=results)
    return execution.pk


def _perform(rule: CompiledRule, spec: dict[str, Any], conversation_id: int) -> dict[str, Any]:
    from kefu.automation import actions

    try:
        outcome = actions.perform_rule_action(
            rule_id=rule.id, rule_name=rule.name, spec=spec, conversation_id=conversation_id
        )
    except KefuError as exc:
        return {"type": spec["type"], "ok": False, "error": exc.message}
    except Exception as exc:
        logger.exception("rule %s action %s failed", rule.id, spec["type"])
        return {"type": spec["type"], "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"type": spec["type"], "ok": True, **outcome}


# --- Dry run -----------------------------------------------------------------------------------


def dry_run(*, rule: CompiledRule, conversations: Any, last: int = 50) -> list[dict[str, Any]]:
    """Evaluate ``rule`` (not saved, or saved) against the ``last`` most recently active of
    ``conversations`` (a scoped queryset). Nothing is written; returns one row per conversation:
    {conversation_id, matched, actions} with the actions that would run."""
    last = max(1, min(int(last), DRY_RUN_MAX))
    latest_text = Subquery(
        Message.objects.filter(conversation=OuterRef("pk"), direction=Direction.INBOUND)
        .order_by("-sent_at", "-id")
        .values("text")[:1]
    )
    rows = (
        conversations.select_related("customer")
        .prefetch_related("tags")
        .annotate(latest_text=latest_text)
        .order_by("-last_message_at", "-id")[:last]
    )
    snapshot = config.current()
    results = []
    for conversation in rows:
        facts = facts_for(
            conversation,
            snapshot=snapshot,
            text=conversation.latest_text or "",
            tags=[t.name for t in conversation.tags.all()],
        )
        matched = rule.applies(facts)
        if matched and rule.trigger == Trigger.TIME_ELAPSED:
            matched = _time_anchor_passed(rule, conversation)
        results.append(
            {
                "conversation_id": conversation.pk,
                "matched": matched,
                "actions": [a["type"] for a in rule.actions] if matched else [],
            }
        )
    return results


def _time_anchor_passed(rule: CompiledRule, conversation: Conversation) -> bool:
    anchor = getattr(conversation, TIME_ANCHORS[rule.options["since"]])
    hours = float(rule.options["hours"])
    return anchor is not None and anchor <= timezone.now() - timedelta(hours=hours)
