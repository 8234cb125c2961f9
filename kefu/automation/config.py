"""The per-process cache of compiled automation configuration.

Policies, rules, calendars and inbox facts are compiled once and reused for every message, so
the ingest path pays for an evaluation in memory, not for queries. Every change made through
``kefu.automation.actions`` bumps the "config" version row; a process compares its copy's version
with the row at most once per ``CHECK_SECONDS`` (one tiny query), and drops its copy when they
differ. Inbox and store facts (kind, time zone, country) are not versioned here: the copy is
rebuilt at least every ``MAX_AGE_SECONDS`` to pick them up.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import holidays

from kefu.automation.calendar import (
    ALWAYS_OPEN,
    Calendar,
    parse_intervals,
    parse_weekly,
    zone,
)
from kefu.automation.models import AutomationState, BusinessHours, InboxRouting, RoutingMode
from kefu.automation.sla import CompiledPolicy, compile_policy
from kefu.core.errors import InvalidInput

if TYPE_CHECKING:
    from kefu.automation.engine import CompiledRule
    from kefu.commerce.models import Store

CHECK_SECONDS = 1.0
MAX_AGE_SECONDS = 60.0
CONFIG = "config"


@dataclass(frozen=True, slots=True)
class InboxInfo:
    id: int
    kind: str
    store_id: int | None
    routing: str


@dataclass
class Snapshot:
    version: int
    loaded_at: float
    checked_at: float
    policies: list[CompiledPolicy]
    rules: dict[str, tuple[CompiledRule, ...]]
    inboxes: dict[int, InboxInfo]
    calendars: dict[int | None, Calendar] = field(default_factory=dict)

    def inbox(self, inbox_id: int) -> InboxInfo:
        info = self.inboxes.get(inbox_id)
        if info is None:
            info = _load_inboxes([inbox_id]).get(inbox_id) or InboxInfo(inbox_id, "", None, "off")
            self.inboxes[inbox_id] = info
        return info

    def calendar(self, store_id: int | None) -> Calendar:
        found = self.calendars.get(store_id)
        if found is None:
            found = load_calendar(store_id)
            self.calendars[store_id] = found
        return found

    def rules_for(self, trigger: str) -> tuple[CompiledRule, ...]:
        return self.rules.get(trigger, ())


_snapshot: Snapshot | None = None
_lock = threading.Lock()


def read_version() -> int:
    """The configuration version; -1 when the row is missing (a database emptied by hand or by
    a test flush), which never matches a cached copy."""
    row = AutomationState.objects.filter(name=CONFIG).values_list("number", flat=True).first()
    return -1 if row is None else row


def current() -> Snapshot:
    """The compiled configuration, fresh to within CHECK_SECONDS of the last change elsewhere
    (immediately for changes made in this process)."""
    global _snapshot
    snap = _snapshot
    now = time.monotonic()
    if snap is not None and now - snap.checked_at < CHECK_SECONDS:
        return snap
    version = read_version()
    fresh = now - (snap.loaded_at if snap else 0) < MAX_AGE_SECONDS
    if snap is not None and version >= 0 and snap.version == version and fresh:
        snap.checked_at = now
        return snap
    with _lock:
        _snapshot = build(version)
        return _snapshot


def invalidate() -> None:
    """Drop this process's copy (the next ``current()`` rebuilds it)."""
    global _snapshot
    _snapshot = None


def build(version: int) -> Snapshot:
    from kefu.automation.engine import compile_rules
    from kefu.automation.models import Rule, SlaPolicy

    now = time.monotonic()
    policies = [compile_policy(p) for p in SlaPolicy.objects.filter(is_active=True)]
    rules = compile_rules(Rule.objects.filter(is_active=True))
    return Snapshot(version, now, now, policies, rules, _load_inboxes(None))


def _load_inboxes(ids: list[int] | None) -> dict[int, InboxInfo]:
    from kefu.conversations.models import Inbox

    rows = Inbox.objects.all() if ids is None else Inbox.objects.filter(pk__in=ids)
    modes = dict(InboxRouting.objects.exclude(mode=RoutingMode.OFF).values_list("inbox_id", "mode"))
    return {
        pk: InboxInfo(pk, kind, store_id, modes.get(pk, RoutingMode.OFF))
        for pk, kind, store_id in rows.values_list("pk", "kind", "store_id")
    }


def load_calendar(store_id: int | None) -> Calendar:
    """The store's business hours (its own, else the default row); 24/7 when neither exists."""
    from kefu.commerce.models import Store

    store = Store.objects.filter(pk=store_id).first() if store_id else None
    hours = (
        BusinessHours.objects.filter(store_id=store_id).first() if store_id is not None else None
    )
    if hours is None:
        hours = BusinessHours.objects.filter(store__isnull=True).first()
    if hours is None:
        return ALWAYS_OPEN
    return build_calendar(hours, store)


def build_calendar(hours: BusinessHours, store: Store | None) -> Calendar:
    """Compile a BusinessHours row (with its holidays) for ``store``. Raises InvalidInput."""
    tz = zone(hours.timezone or (store.timezone if store else "UTC"))
    special, annual = {}, {}
    for holiday in hours.holidays.all() if hours.pk else []:
        intervals = parse_intervals(holiday.hours, field_name="hours")
        if holiday.annual:
            annual[(holiday.date.month, holiday.date.day)] = intervals
        else:
            special[holiday.date] = intervals
    is_holiday = None
    if hours.public_holidays:
        country = hours.holiday_country or (store.country if store else "")
        if country:
            is_holiday = public_holidays(country, hours.holiday_subdivision).__contains__
    return Calendar(tz, parse_weekly(hours.weekly), special, annual, is_holiday)


def public_holidays(country: str, subdivision: str = "") -> holidays.HolidayBase:
    try:
        return holidays.country_holidays(country.upper(), subdiv=subdivision or None)
    except NotImplementedError:
        raise InvalidInput(
            f"no public holidays known for {country!r}", field="holiday_country"
        ) from None
