"""Rule conditions: validated once when a rule is saved or loaded, compiled to plain callables.

A condition is ``{"field": ..., "op": ..., "value": ...}``. Compiling checks the field, the
operator and the value's type (raising InvalidInput with the condition's position), so a rule
that loads cannot fail on a malformed condition while it runs. Regular expressions use RE2
(linear time, no backtracking: a pattern written by an admin cannot stall a worker on a
customer's text) with a memory cap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import re2

from kefu.automation.sla import base_language
from kefu.core.errors import InvalidInput

MAX_PATTERN = 500
MAX_TEXT = 20_000
PRIORITY_ORDER = {"low": 0, "normal": 1, "high": 2, "urgent": 3}


@dataclass(slots=True)
class Facts:
    """What conditions read. Loaded by the caller; ``tags`` may be a loader (fetched once)."""

    conversation_id: int
    inbox_id: int
    inbox_kind: str
    store_id: int | None
    status: str
    priority: str
    language: str = ""
    intent: str = ""
    sentiment: float | None = None
    assignee_id: int | None = None
    team_id: int | None = None
    subject: str = ""
    text: str = ""
    segments: frozenset[str] = frozenset()
    changes: frozenset[str] = frozenset()
    sla_target: str = ""
    event: str = ""
    now: datetime | None = None
    tags_loader: Callable[[], Iterable[str]] | None = None
    open_now: Callable[[], bool] | None = None
    _tags: frozenset[str] | None = field(default=None, repr=False)
    _folded: str | None = field(default=None, repr=False)

    @property
    def tags(self) -> frozenset[str]:
        if self._tags is None:
            self._tags = frozenset(self.tags_loader() if self.tags_loader else ())
        return self._tags

    @property
    def folded_text(self) -> str:
        if self._folded is None:
            self._folded = self.text[:MAX_TEXT].casefold()
        return self._folded


Check = Callable[[Facts], bool]


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else [value]
    if not items or not all(isinstance(v, str) and v.strip() for v in items):
        raise InvalidInput(f"{where}: value must be a text or a list of texts", field="conditions")
    return tuple(v.strip() for v in items)


def _ids(value: Any, where: str) -> frozenset[int]:
    items = value if isinstance(value, list | tuple) else [value]
    try:
        return frozenset(int(v) for v in items)
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: value must be ids", field="conditions") from None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{where}: value must be a number", field="conditions")
    return float(value)


def compile_regex(pattern: Any, where: str = "pattern") -> Any:
    if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN:
        raise InvalidInput(
            f"{where}: a pattern of 1 to {MAX_PATTERN} characters", field="conditions"
        )
    options = re2.Options()
    options.max_mem = 1 << 20
    options.case_sensitive = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        raise InvalidInput(f"{where}: not a valid pattern ({exc})", field="conditions") from None


# --- Field readers ------------------------------------------------------------------------------


def _scalar(name: str) -> Callable[[Facts], Any]:
    if name == "channel":
        return lambda f: f.inbox_kind
    if name == "language":
        return lambda f: base_language(f.language)
    return lambda f: getattr(f, name)


_TEXT_FIELDS = {"text", "subject"}
_SET_FIELDS = {
    "tags": lambda f: f.tags,
    "segment": lambda f: f.segments,
    "changed": lambda f: f.changes,
}
_STRING_FIELDS = {"channel", "status", "priority", "language", "intent", "sla_target", "event"}
_ID_FIELDS = {
    "inbox": "inbox_id",
    "store": "store_id",
    "assignee": "assignee_id",
    "team": "team_id",
}
FIELDS = sorted(
    [*_TEXT_FIELDS, *_SET_FIELDS, *_STRING_FIELDS, *_ID_FIELDS, "sentiment", "business_hours"]
)


def _string_check(name: str, op: str, value: Any, where: str) -> Check:
    read = _scalar(name)
    if op in ("present", "absent"):
        want = op == "present"
        return lambda f: bool(read(f)) is want
    if name == "priority" and op in ("at_least", "at_most"):
        (level,) = _strings(value, where)
        if level not in PRIORITY_ORDER:
            raise InvalidInput(f"{where}: unknown priority {level!r}", field="conditions")
        rank = PRIORITY_ORDER[level]
        if op == "at_least":
            return lambda f: PRIORITY_ORDER.get(f.priority, 0) >= rank
        return lambda f: PRIORITY_ORDER.get(f.priority, 0) <= rank
    values = _strings(value, where)
    if name == "language":
        values = tuple(base_language(v) for v in values)
    wanted = frozenset(values)
    if op in ("is", "in"):
        return lambda f: read(f) in wanted
    if op in ("is_not", "not_in"):
        return lambda f: read(f) not in wanted
    raise InvalidInput(
        f"{where}: {name} takes is, is_not, in, not_in, present, absent", field="conditions"
    )


def _id_check(name: str, op: str, value: Any, where: str) -> Check:
    attr = _ID_FIELDS[name]
    if op == "is_set":
        return lambda f: getattr(f, attr) is not None
    if op == "is_none":
        return lambda f: getattr(f, attr) is None
    wanted = _ids(value, where)
    if op in ("is", "in"):
        return lambda f: getattr(f, attr) in wanted
    if op in ("is_not", "not_in"):
        return lambda f: getattr(f, attr) not in wanted
    raise InvalidInput(
        f"{where}: {name} takes is, in, is_not, not_in, is_set, is_none", field="conditions"
    )


def _set_check(name: str, op: str, value: Any, where: str) -> Check:
    read = _SET_FIELDS[name]
    wanted = frozenset(v.lower() for v in _strings(value, where))
    if op == "contains_any":
        return lambda f: not wanted.isdisjoint(read(f))
    if op == "contains_all":
        return lambda f: wanted <= read(f)
    if op == "contains_none":
        return lambda f: wanted.isdisjoint(read(f))
    raise InvalidInput(
        f"{where}: {name} takes contains_any, contains_all, contains_none", field="conditions"
    )


def _text_check(name: str, op: str, value: Any, where: str) -> Check:
    def read(f: Facts) -> str:
        return f.folded_text if name == "text" else f.subject.casefold()

    if op in ("contains", "not_contains"):
        words = tuple(w.casefold() for w in _strings(value, where))
        if op == "contains":
            return lambda f: any(w in read(f) for w in words)
        return lambda f: not any(w in read(f) for w in words)
    if op in ("matches", "not_matches"):
        pattern = compile_regex(value, where)
        if op == "matches":
            return lambda f: pattern.search(read(f)) is not None
        return lambda f: pattern.search(read(f)) is None
    raise InvalidInput(
        f"{where}: {name} takes contains, not_contains, matches, not_matches", field="conditions"
    )


def _sentiment_check(op: str, value: Any, where: str) -> Check:
    limit = _number(value, where)
    compare = {
        "lt": lambda s: s < limit,
        "lte": lambda s: s <= limit,
        "gt": lambda s: s > limit,
        "gte": lambda s: s >= limit,
    }.get(op)
    if compare is None:
        raise InvalidInput(f"{where}: sentiment takes lt, lte, gt, gte", field="conditions")
    return lambda f: f.sentiment is not None and compare(f.sentiment)


def _hours_check(op: str, value: Any, where: str) -> Check:
    if op != "is" or not isinstance(value, bool):
        raise InvalidInput(f"{where}: business_hours takes is true|false", field="conditions")
    return lambda f: (f.open_now() if f.open_now else True) is value


def compile_condition(raw: Any, where: str) -> Check:
    if not isinstance(raw, dict) or "field" not in raw or "op" not in raw:
        raise InvalidInput(f"{where}: a condition is {{field, op, value}}", field="conditions")
    name, op, value = raw["field"], raw["op"], raw.get("value")
    if name in _TEXT_FIELDS:
        return _text_check(name, op, value, where)
    if name in _SET_FIELDS:
        return _set_check(name, op, value, where)
    if name in _STRING_FIELDS:
        return _string_check(name, op, value, where)
    if name in _ID_FIELDS:
        return _id_check(name, op, value, where)
    if name == "sentiment":
        return _sentiment_check(op, value, where)
    if name == "business_hours":
        return _hours_check(op, value, where)
    raise InvalidInput(
        f"{where}: unknown field {name!r}; one of {', '.join(FIELDS)}", field="conditions"
    )


@dataclass(frozen=True, slots=True)
class CompiledConditions:
    all: tuple[Check, ...]
    any: tuple[Check, ...]
    needs_tags: bool

    def __call__(self, facts: Facts) -> bool:
        for check in self.all:
            if not check(facts):
                return False
        if not self.any:
            return True
        return any(check(facts) for check in self.any)


def compile_conditions(raw: Any) -> CompiledConditions:
    """{"all": [...], "any": [...]} (or a plain list, meaning all) -> a callable."""
    if raw in (None, {}, []):
        return CompiledConditions((), (), False)
    if isinstance(raw, list):
        raw = {"all": raw}
    if not isinstance(raw, dict) or set(raw) - {"all", "any"}:
        raise InvalidInput('conditions are {"all": [...], "any": [...]}', field="conditions")
    groups = {}
    for group in ("all", "any"):
        items = raw.get(group) or []
        if not isinstance(items, list):
            raise InvalidInput(f"conditions.{group} must be a list", field="conditions")
        groups[group] = tuple(
            compile_condition(c, f"conditions.{group}[{i}]") for i, c in enumerate(items)
        )
    fields_used = {c.get("field") for g in ("all", "any") for c in raw.get(g) or []}
    return CompiledConditions(groups["all"], groups["any"], "tags" in fields_used)
