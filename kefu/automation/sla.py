"""SLA policies and clocks, as pure functions over plain values (no database here).

:func:`recompute` derives a conversation's SLA state from what is true now (status, whether the
customer is waiting, whether a counting response happened, the policy that applies), so it is
safe to run again after any event, in any order: the drain, a reply, a status change and the
tick all call it and agree. The writes live in ``kefu.automation.actions``.

Targets (each optional in a policy):
- first response: from the first customer message until the first response that counts
  (an agent's; a bot's or system's only when the policy counts auto-replies);
- next response: from a customer message that waits until the next counting response, once
  the first response happened;
- resolution: from the first customer message until solved; reopening resumes it.
Clocks pause in the policy's pause statuses and while solved, keeping the open time left, and
resume from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from kefu.automation.calendar import Calendar
from kefu.automation.models import Clock, SlaPolicy, SlaTarget

TARGETS = (SlaTarget.FIRST_RESPONSE, SlaTarget.NEXT_RESPONSE, SlaTarget.RESOLUTION)
DUE_FIELDS = {
    SlaTarget.FIRST_RESPONSE: "first_response_due_at",
    SlaTarget.NEXT_RESPONSE: "next_response_due_at",
    SlaTarget.RESOLUTION: "resolution_due_at",
}
DONE_STATUSES = frozenset({"solved", "closed"})
AUTO_AUTHORS = frozenset({"bot", "system"})


def base_language(code: str | None) -> str:
    return (code or "").lower().replace("_", "-").split("-")[0]


@dataclass(frozen=True, slots=True)
class Subject:
    """What policy choice and clocks need to know about a conversation."""

    id: int
    inbox_id: int
    inbox_kind: str
    store_id: int | None
    status: str
    priority: str
    intent: str = ""
    segments: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    id: int
    name: str
    store_ids: frozenset[int]
    inbox_kinds: frozenset[str]
    inbox_ids: frozenset[int]
    priorities: frozenset[str]
    segments: frozenset[str]
    intents: frozenset[str]
    seconds: dict[str, int]
    calendar_clock: bool
    pause_statuses: frozenset[str]
    count_auto_replies: bool
    warn_percent: int

    def matches(self, s: Subject) -> bool:
        # Cheapest and most selective tests first: most policies fail on the inbox kind.
        return (
            (not self.inbox_kinds or s.inbox_kind in self.inbox_kinds)
            and (not self.inbox_ids or s.inbox_id in self.inbox_ids)
            and (not self.store_ids or s.store_id in self.store_ids)
            and (not self.priorities or s.priority in self.priorities)
            and (not self.intents or s.intent in self.intents)
            and (not self.segments or not self.segments.isdisjoint(s.segments))
        )

    def counts(self, author_kind: str) -> bool:
        """Whether an outbound message by ``author_kind`` counts as a response."""
        return self.count_auto_replies or author_kind not in AUTO_AUTHORS


def compile_policy(policy: SlaPolicy) -> CompiledPolicy:
    seconds: dict[str, int] = {
        str(target): value
        for target, value in (
            (SlaTarget.FIRST_RESPONSE, policy.first_response_seconds),
            (SlaTarget.NEXT_RESPONSE, policy.next_response_seconds),
            (SlaTarget.RESOLUTION, policy.resolution_seconds),
        )
        if value
    }
    return CompiledPolicy(
        id=policy.pk,
        name=policy.name,
        store_ids=frozenset(int(i) for i in policy.store_ids),
        inbox_kinds=frozenset(policy.inbox_kinds),
        inbox_ids=frozenset(int(i) for i in policy.inbox_ids),
        priorities=frozenset(policy.priorities),
        segments=frozenset(str(s).lower() for s in policy.segments),
        intents=frozenset(policy.intents),
        seconds=seconds,
        calendar_clock=policy.clock == Clock.CALENDAR,
        pause_statuses=frozenset(policy.pause_statuses),
        count_auto_replies=policy.count_auto_replies,
        warn_percent=policy.warn_percent,
    )


def choose(policies: list[CompiledPolicy], subject: Subject) -> CompiledPolicy | None:
    """The first policy (by position) that matches, or None."""
    for policy in policies:
        if policy.matches(subject):
            return policy
    return None


@dataclass(slots=True)
class ClockState:
    """The mutable SLA state of one conversation (mirrors the SlaClock row)."""

    policy_id: int | None = None
    status: str = ""
    started_at: datetime | None = None
    first_responded_at: datetime | None = None
    last_responded_at: datetime | None = None
    awaiting_since: datetime | None = None
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    fired: list[str] = field(default_factory=list)
    next_check_at: datetime | None = None
    first_response_breached: bool | None = None
    next_response_breaches: int = 0
    next_response_met: int = 0
    resolution_breached: bool | None = None


CLOCK_FIELDS = [f.name for f in fields(ClockState)]


@dataclass(frozen=True, slots=True)
class Fulfilment:
    target: str
    due_at: datetime
    at: datetime
    met: bool
    elapsed_seconds: int | None


@dataclass(slots=True)
class Outcome:
    """What :func:`recompute` decided: due times for the conversation and targets completed."""

    due: dict[str, datetime | None]
    fulfilled: list[Fulfilment]


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _active(target: str, state: ClockState, seconds: dict[str, int]) -> datetime | None:
    """The start of ``target`` when it currently applies, else None."""
    if target not in seconds or state.started_at is None:
        return None
    if target == SlaTarget.FIRST_RESPONSE:
        return state.started_at if state.first_responded_at is None else None
    if target == SlaTarget.NEXT_RESPONSE:
        if state.first_responded_at is None or state.awaiting_since is None:
            return None
        return state.awaiting_since
    return state.started_at


def recompute(
    state: ClockState,
    *,
    status: str,
    policy: CompiledPolicy | None,
    calendar: Calendar,
    now: datetime,
) -> Outcome:
    """Bring ``state`` up to date at ``now`` for a conversation in ``status``; mutates ``state``.

    Contract: idempotent (running it twice at the same moment changes nothing the second time),
    and it never moves a due time that is running and unchanged in policy.
    """
    fulfilled: list[Fulfilment] = []
    seconds = policy.seconds if policy else {}
    clock = calendar if policy is not None and not policy.calendar_clock else _ALWAYS
    if policy is None or state.policy_id != policy.id:
        # A different policy: restart the targets from their starts with the new targets.
        state.targets = {}
        state.fired = []
        state.policy_id = policy.id if policy else None
    paused = status in DONE_STATUSES or (policy is not None and status in policy.pause_statuses)
    if status in DONE_STATUSES and state.status not in DONE_STATUSES:
        fulfilled.extend(_resolve(state, clock, now))
    for target in TARGETS:
        start = _active(target, state, seconds)
        entry = state.targets.get(target)
        if start is None:
            if entry is not None:
                fulfilled.extend(_complete(state, target, entry, clock, now))
                del state.targets[target]
            continue
        if entry is None:
            due = clock.add(start, seconds[target])
            entry = {"due": _iso(due), "remaining": None, "start": _iso(start)}
            state.targets[target] = entry
        if paused and entry["remaining"] is None:
            entry["remaining"] = clock.between(now, _parse(entry["due"]))
        elif not paused and entry["remaining"] is not None:
            if entry["remaining"] > 0:
                entry["due"] = _iso(clock.add(now, entry["remaining"]))
            entry["remaining"] = None
    state.status = status
    due_fields: dict[str, datetime | None] = {
        DUE_FIELDS[t]: (
            _parse(e["due"]) if (e := state.targets.get(t)) and e["remaining"] is None else None
        )
        for t in TARGETS
    }
    _schedule(state, policy, clock, seconds)
    return Outcome(due=due_fields, fulfilled=fulfilled)


def _complete(
    state: ClockState, target: str, entry: dict, clock: Calendar, now: datetime
) -> list[Fulfilment]:
    """A response target stopped applying: record whether it was met."""
    if target == SlaTarget.RESOLUTION:
        return []
    at = state.last_responded_at
    if at is None:
        return []  # stopped without a response (policy change, solved unanswered): no verdict
    due = _parse(entry["due"])
    met = entry["remaining"] > 0 if entry["remaining"] is not None else at <= due
    elapsed = int(clock.between(_parse(entry["start"]), at)) if entry.get("start") else None
    if target == SlaTarget.FIRST_RESPONSE:
        state.first_response_breached = not met
    elif met:
        state.next_response_met += 1
    else:
        state.next_response_breaches += 1
    return [Fulfilment(target, due, at, met, elapsed)]


def _resolve(state: ClockState, clock: Calendar, now: datetime) -> list[Fulfilment]:
    entry = state.targets.get(SlaTarget.RESOLUTION)
    if entry is None:
        return []
    due = _parse(entry["due"])
    met = entry["remaining"] > 0 if entry["remaining"] is not None else now <= due
    state.resolution_breached = not met
    elapsed = int(clock.between(_parse(entry["start"]), now)) if entry.get("start") else None
    return [Fulfilment(SlaTarget.RESOLUTION, due, now, met, elapsed)]


def fire_key(target: str, kind: str, due_iso: str) -> str:
    return f"{target}:{kind}:{due_iso}"


def moments(
    state: ClockState, policy: CompiledPolicy | None, clock: Calendar, seconds: dict[str, int]
) -> list[tuple[datetime, str, str, str]]:
    """(when, target, kind, due iso) of every warning and breach of the running targets."""
    found = []
    for target, entry in state.targets.items():
        if entry["remaining"] is not None or target not in seconds:
            continue
        due = _parse(entry["due"])
        found.append((due, target, "breach", entry["due"]))
        if policy is not None and 0 < policy.warn_percent < 100:
            ahead = seconds[target] * (100 - policy.warn_percent) / 100
            found.append((clock.subtract(due, ahead), target, "warning", entry["due"]))
    return sorted(found)


def _schedule(
    state: ClockState, policy: CompiledPolicy | None, clock: Calendar, seconds: dict[str, int]
) -> None:
    scheduled = moments(state, policy, clock, seconds)
    pending = [m for m in scheduled if fire_key(*m[1:]) not in state.fired]
    # Forget moments of due times that no longer exist, so the list stays short.
    live = {fire_key(*m[1:]) for m in scheduled}
    state.fired = [key for key in state.fired if key in live]
    state.next_check_at = pending[0][0] if pending else None


def due_moments(
    state: ClockState, policy: CompiledPolicy | None, calendar: Calendar, now: datetime
) -> list[tuple[datetime, str, str, str]]:
    """The warnings and breaches due at ``now`` that have not fired yet (for the tick)."""
    seconds = policy.seconds if policy else {}
    clock = calendar if policy is not None and not policy.calendar_clock else _ALWAYS
    return [
        m
        for m in moments(state, policy, clock, seconds)
        if m[0] <= now and fire_key(*m[1:]) not in state.fired
    ]


def mark_fired(
    state: ClockState,
    policy: CompiledPolicy | None,
    calendar: Calendar,
    fired: list[tuple[datetime, str, str, str]],
) -> None:
    """Record ``fired`` moments and move ``next_check_at`` to the next pending one."""
    state.fired = [*state.fired, *(fire_key(*m[1:]) for m in fired)]
    seconds = policy.seconds if policy else {}
    clock = calendar if policy is not None and not policy.calendar_clock else _ALWAYS
    _schedule(state, policy, clock, seconds)


_ALWAYS = Calendar(always_open=True)
