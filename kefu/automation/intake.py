"""Intake: automation's pass over new customer messages, in bulk, off the ingest path.

The pipeline's after-commit events (``message.received``, ``conversation.created``) only *poke*
the intake: at most one deferred ``drain_intake`` task per process every ``WINDOW`` seconds, so
a burst of single messages or a batch of 500 costs the ingest path one enqueue, not a query per
message. The drain then reads every message past a cursor and does, per batch: the SLA clocks
(one transaction), the rules (``conversation_created`` once per conversation,
``message_received`` once per message, both keyed so a retry never repeats them), and routing of
conversations seen for the first time.

Durability: the cursor lives in the database and advances only after a batch is processed
(at least once; the rule keys make a replay harmless). Ids that are missing below the newest one
seen (a transaction still in flight, or rolled back) are remembered as gaps and looked at again
for ``GAP_TIMEOUT``. One drain runs at a time (a lease row); a drain that finds the lease taken
marks it dirty, and the holder goes round once more before it lets go, so nothing is stranded.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from kefu.automation import actions, config, engine
from kefu.automation.models import AutomationState, RoutingMode, Trigger
from kefu.conversations.models import Conversation, Direction, Message
from kefu.core.drains import DrainPoke

logger = logging.getLogger(__name__)

INTAKE = "intake"
TICK = "tick"
BATCH = 500
WINDOW = 0.2
LEASE = timedelta(seconds=60)
GAP_TIMEOUT = timedelta(seconds=60)
MAX_ROUNDS = 40
TICK_SECONDS = 30


def is_sync() -> bool:
    """Run the intake inline (tests, the immediate task backend) instead of in a task."""
    if getattr(settings, "KEFU_AUTOMATION_SYNC", False):
        return True
    backend = str(settings.TASKS.get("default", {}).get("BACKEND", ""))
    return backend.endswith("ImmediateBackend")


# Ask for a drain soon (see kefu.core.drains): after each stored row, from the request.
poke = DrainPoke(
    "kefu.automation.tasks.drain_intake",
    window=WINDOW,
    drain=lambda: drain(),
    is_sync=lambda: is_sync(),
    on_failure="could not enqueue the automation intake (the tick drains too: late, never lost)",
)


# --- The lease ---------------------------------------------------------------------------------


def _row() -> None:
    AutomationState.objects.get_or_create(name=INTAKE)


def _acquire(owner: str) -> bool:
    _row()
    for _ in range(3):
        now = timezone.now()
        busy = AutomationState.objects.filter(name=INTAKE, lease_until__gt=now).exclude(
            lease_owner=owner
        )
        if busy.update(dirty=True):
            return False  # the holder will go round once more for us
        free = AutomationState.objects.filter(name=INTAKE).filter(
            Q(lease_until__isnull=True) | Q(lease_until__lte=now)
        )
        if free.update(lease_owner=owner, lease_until=now + LEASE, dirty=False):
            return True
    return False


def _release(owner: str) -> bool:
    """Let go unless someone asked for another round meanwhile (then: False, go round)."""
    mine = AutomationState.objects.filter(name=INTAKE, lease_owner=owner)
    if mine.filter(dirty=False).update(lease_owner="", lease_until=None):
        return True
    mine.update(dirty=False, lease_until=timezone.now() + LEASE)
    return False


def drain(*, batch: int = BATCH) -> int:
    """Process every message past the cursor; returns how many messages were looked at.
    Returns 0 at once when another drain holds the lease (it will do the work)."""
    owner = uuid.uuid4().hex
    if not _acquire(owner):
        return 0
    seen = 0
    try:
        for _ in range(MAX_ROUNDS):
            count = _round(owner, batch)
            seen += count
            if count < batch and _release(owner):
                owner = ""
                break
    finally:
        if owner:
            AutomationState.objects.filter(name=INTAKE, lease_owner=owner).update(
                lease_owner="", lease_until=None, dirty=False
            )
            if seen:
                poke()  # rounds left over (or an error): continue in a fresh drain
    ensure_ticking()
    return seen


# --- One round -----------------------------------------------------------------------------------

Row = tuple[int, str, int, datetime]


def _round(owner: str, batch: int) -> int:
    state = AutomationState.objects.get(name=INTAKE)
    position = state.number
    gaps: list[list[Any]] = list(state.data.get("gaps", []))
    rows: list[Row] = list(
        Message.objects.filter(pk__gt=position)
        .order_by("pk")
        .values_list("pk", "direction", "conversation_id", "sent_at")[:batch]
    )
    late = _in_gaps(gaps)
    process([r for r in [*late, *rows] if r[1] == Direction.INBOUND])
    now = timezone.now()
    gaps = _remaining_gaps(gaps, {r[0] for r in late}, now)
    if rows:
        gaps.extend(_new_gaps(position, [r[0] for r in rows], now))
        position = rows[-1][0]
    AutomationState.objects.filter(name=INTAKE, lease_owner=owner).update(
        number=position, data={"gaps": gaps}, lease_until=now + LEASE
    )
    return len(rows) + len(late)


def _in_gaps(gaps: list[list[Any]]) -> list[Row]:
    if not gaps:
        return []
    where = Q()
    for low, high, _ in gaps:
        where |= Q(pk__gte=low, pk__lte=high)
    return list(
        Message.objects.filter(where).values_list("pk", "direction", "conversation_id", "sent_at")
    )


def _new_gaps(position: int, ids: list[int], now: datetime) -> list[list[Any]]:
    gaps, expected = [], position + 1
    for pk in ids:
        if pk > expected:
            gaps.append([expected, pk - 1, now.isoformat()])
        expected = pk + 1
    return gaps


def _remaining_gaps(gaps: list[list[Any]], found: set[int], now: datetime) -> list[list[Any]]:
    """Drop found ids (splitting ranges) and gaps older than GAP_TIMEOUT (rolled back)."""
    kept = []
    for low, high, seen_at in gaps:
        if datetime.fromisoformat(seen_at) < now - GAP_TIMEOUT:
            continue
        start = low
        for pk in sorted(i for i in found if low <= i <= high):
            if pk > start:
                kept.append([start, pk - 1, seen_at])
            start = pk + 1
        if start <= high:
            kept.append([start, high, seen_at])
    return kept


def process(rows: list[Row]) -> None:
    """SLA, rules and routing for these inbound messages (any order, possibly seen before)."""
    if not rows:
        return
    first_at: dict[int, datetime] = {}
    for _, _, conversation_id, sent_at in rows:
        if conversation_id not in first_at or sent_at < first_at[conversation_id]:
            first_at[conversation_id] = sent_at
    new = actions.refresh_sla_many(inbound=first_at)
    snapshot = config.current()
    _run_rules(rows, set(new), snapshot)
    _route(new, snapshot)


def _run_rules(rows: list[Row], new: set[int], snapshot: config.Snapshot) -> None:
    created = snapshot.rules_for(Trigger.CONVERSATION_CREATED)
    received = snapshot.rules_for(Trigger.MESSAGE_RECEIVED)
    if not received and not (created and new):
        return
    messages = (
        Message.objects.filter(pk__in=[r[0] for r in rows])
        # A connector's flag for mail rules must not answer (a sender flooding the inbox).
        .exclude(metadata__has_key="skip_automation")
        .select_related("conversation__customer")
        .only(
            "pk",
            "text",
            "conversation__id",
            "conversation__inbox_id",
            "conversation__store_id",
            "conversation__status",
            "conversation__priority",
            "conversation__language",
            "conversation__intent",
            "conversation__sentiment",
            "conversation__assignee_id",
            "conversation__team_id",
            "conversation__subject",
            "conversation__merged_into_id",
            "conversation__customer__tags",
        )
        .order_by("pk")
    )
    tags = _tags(rows) if any(r.check.needs_tags for r in (*created, *received)) else None
    for message in messages:
        conversation = message.conversation
        if conversation.merged_into_id is not None:
            continue
        facts = engine.facts_for(
            conversation,
            snapshot=snapshot,
            text=message.text,
            tags=tags.get(conversation.pk, []) if tags is not None else None,
        )
        if conversation.pk in new and created:
            new.discard(conversation.pk)
            engine.run(Trigger.CONVERSATION_CREATED, facts, key="created")
        if received:
            engine.run(Trigger.MESSAGE_RECEIVED, facts, key=f"message:{message.pk}")


def _tags(rows: list[Row]) -> dict[int, list[str]]:
    through = Conversation.tags.through
    found: dict[int, list[str]] = {}
    for conversation_id, name in through.objects.filter(
        conversation_id__in={r[2] for r in rows}
    ).values_list("conversation_id", "tag__name"):
        found.setdefault(conversation_id, []).append(name)
    return found


def _route(new: list[int], snapshot: config.Snapshot) -> None:
    if not new:
        return
    inboxes = dict(Conversation.objects.filter(pk__in=new).values_list("pk", "inbox_id"))
    for conversation_id in new:
        inbox_id = inboxes.get(conversation_id)
        if inbox_id is None or snapshot.inbox(inbox_id).routing == RoutingMode.OFF:
            continue
        try:
            actions.route_conversation(conversation_id=conversation_id)
        except Exception:
            logger.exception("routing conversation %s failed", conversation_id)


# --- The tick --------------------------------------------------------------------------------


def tick(*, now: datetime | None = None) -> dict[str, int]:
    """One pass of the periodic work: SLA warnings and breaches, snoozes that end, work of agents
    who went away, queues of routed inboxes, time-based rules, and a drain for stragglers."""
    now = now or timezone.now()
    summary = {
        "sla_events": len(actions.fire_due_sla(now=now)),
        "woken": len(actions.wake_snoozed(now=now)),
        "returned": len(actions.return_work_of_away_agents(now=now)),
        "routed": _route_queues(),
        "time_rules": len(actions.run_time_rules(now=now)),
        "drained": drain(),
    }
    return summary


def _route_queues() -> int:
    from kefu.automation.models import InboxRouting

    routed = 0
    for inbox_id in InboxRouting.objects.exclude(mode=RoutingMode.OFF).values_list(
        "inbox_id", flat=True
    ):
        routed += len(actions.route_queue(inbox_id=inbox_id))
    return routed


def claim_tick() -> bool:
    """Stamp the "tick" row when no tick ran in the last half interval; False otherwise."""
    now = timezone.now()
    AutomationState.objects.get_or_create(name=TICK)
    recent = now - timedelta(seconds=TICK_SECONDS / 2)
    return bool(
        AutomationState.objects.filter(name=TICK)
        .filter(Q(at__isnull=True) | Q(at__lt=recent))
        .update(at=now)
    )


_next_tick_check = 0.0


def ensure_ticking() -> None:
    """Start the self-rescheduling tick task when no tick ran for three intervals (checked at
    most once per interval per process)."""
    global _next_tick_check
    if is_sync() or time.monotonic() < _next_tick_check:
        return
    _next_tick_check = time.monotonic() + TICK_SECONDS
    stale = timezone.now() - timedelta(seconds=3 * TICK_SECONDS)
    last = AutomationState.objects.filter(name=TICK).values_list("at", flat=True).first()
    if last is not None and last > stale:
        return
    from kefu.automation.tasks import sla_tick

    try:
        if sla_tick.get_backend().supports_defer:
            sla_tick.enqueue()
    except Exception:
        _next_tick_check = 0.0
        logger.exception("could not start the SLA tick")
