"""Search as agents use it: one query, results grouped and ranked, scoped to the agent.

Order of work for ``search(agent=..., q=...)``:

1. scope: the agent's inboxes (``kefu.conversations.selectors``), narrowed by the inbox and
   channel filters. An agent without inboxes gets nothing, without a query being run;
2. exact lookups (:mod:`kefu.search.identifiers`): conversation numbers, emails, phones, and
   order and tracking numbers (:mod:`kefu.search.orders`, through the commerce selectors);
3. full text: the newest ``CANDIDATES`` matching messages within the scope and filters, each
   scored by relevance (bm25 / ts_rank, scaled to the best candidate) and recency, grouped by
   conversation (a conversation scores its best message);
4. conversations: exact hits first, then by score; loaded through ``conversations_visible_to``
   (the authority on scope: a stale index row can never show a foreign conversation), with a
   highlighted snippet of the best message;
5. customers: exact hits first, then name/email matches, through ``customers_visible_to``.

Nothing is counted beyond what the agent may see: the groups hold only visible rows, and
``more`` says whether more visible conversations matched than were returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from kefu.accounts.models import Agent
from kefu.conversations.models import Conversation, Inbox, InboxKind, Message, Status
from kefu.conversations.selectors import conversations_visible_to, visible_inbox_ids
from kefu.core.errors import InvalidInput
from kefu.customers.models import Customer
from kefu.search import identifiers, index
from kefu.search.engines import Candidate, Scope, engine_for
from kefu.search.highlight import snippet
from kefu.search.query import ParsedQuery, parse

DEFAULT_LIMIT = 20
MAX_LIMIT = 50
# How many of the newest matching messages are ranked. A word in every other message still
# costs a bounded amount; older matches are reached by adding words or a date range.
CANDIDATES = 400
CUSTOMER_CANDIDATES = 100
# Score = RELEVANCE_WEIGHT * relevance (0..1, best candidate = 1) + the rest * recency, where
# recency halves every RECENCY_HALF_LIFE_DAYS.
RELEVANCE_WEIGHT = 0.7
RECENCY_HALF_LIFE_DAYS = 30.0


@dataclass(frozen=True, slots=True)
class Filters:
    statuses: list[str] = field(default_factory=list)
    inbox_id: int | None = None
    channel: str | None = None
    assignee: str | None = None  # an agent id, "me" or "none"
    since: datetime | None = None
    until: datetime | None = None

    def validate(self) -> None:
        """Raises InvalidInput on an unknown status or channel, or a bad assignee."""
        for status in self.statuses:
            if status not in Status.values:
                raise InvalidInput(f"unknown status {status!r}", field="status")
        if self.channel and self.channel not in InboxKind.values:
            raise InvalidInput(f"unknown channel {self.channel!r}", field="channel")
        if self.assignee and self.assignee not in ("me", "none") and not self.assignee.isdigit():
            raise InvalidInput("assignee must be an id, 'me' or 'none'", field="assignee")


@dataclass(slots=True)
class ConversationHit:
    conversation: Conversation
    exact: bool
    score: float
    message_id: int | None = None
    snippet: str = ""


@dataclass(slots=True)
class CustomerHit:
    customer: Customer
    exact: bool


@dataclass(slots=True)
class SearchResults:
    query: str
    identifiers: list[identifiers.Identifier] = field(default_factory=list)
    conversations: list[ConversationHit] = field(default_factory=list)
    customers: list[CustomerHit] = field(default_factory=list)
    orders: list[dict] = field(default_factory=list)
    more: bool = False

    @property
    def is_empty(self) -> bool:
        return not (self.conversations or self.customers or self.orders)


def search(
    *, agent: Agent, q: str, filters: Filters | None = None, limit: int = DEFAULT_LIMIT
) -> SearchResults:
    """Search ``q`` as ``agent``. Raises InvalidInput on bad filters or limit."""
    filters = filters or Filters()
    filters.validate()
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be 1 to {MAX_LIMIT}", field="limit")
    q = q.strip()
    results = SearchResults(query=q)
    inbox_ids = _inbox_scope(agent, filters)
    if not q or inbox_ids == []:
        return results
    # What this process committed a moment ago and has not indexed yet: the agent who just
    # wrote a note finds it.
    index.flush_pending()
    exact = identifiers.resolve(q, agent)
    # A tracking number typed in groups is one term in the messages that mention it.
    kinds = {i.kind: i.value for i in exact.identifiers}
    grouped = " " in q and "tracking" in kinds and "phone" not in kinds
    parsed = parse(kinds["tracking"] if grouped else q)
    results.identifiers = exact.identifiers
    results.orders = exact.orders
    scope = Scope(
        inbox_ids=inbox_ids,
        statuses=filters.statuses or None,
        assignee=_assignee(agent, filters.assignee),
        since=filters.since,
        until=filters.until,
    )
    ranked = _rank(_candidates(parsed, scope, limit)) if parsed.phrases else []
    results.conversations, results.more = _conversations(
        agent, filters, scope, exact, ranked, parsed, limit
    )
    results.customers = _customers(agent, inbox_ids, exact, parsed, limit)
    return results


def _inbox_scope(agent: Agent, filters: Filters) -> list[int] | None:
    """The inbox ids to search (None: every inbox, for someone who sees them all)."""
    everything = agent.is_active and agent.sees_every_inbox
    ids: list[int] | None = None if everything else visible_inbox_ids(agent)
    if filters.inbox_id is not None:
        ids = [filters.inbox_id] if ids is None or filters.inbox_id in ids else []
    if filters.channel:
        of_kind = Inbox.objects.filter(kind=filters.channel).values_list("pk", flat=True)
        ids = sorted(set(of_kind) if ids is None else set(of_kind) & set(ids))
    return ids


def _assignee(agent: Agent, value: str | None) -> int | None:
    if not value:
        return None
    if value == "me":
        return agent.pk
    if value == "none":
        return 0
    return int(value)


# --- ranking ---------------------------------------------------------------------------------


def _candidates(parsed: ParsedQuery, scope: Scope, page: int) -> list[Candidate]:
    """The newest CANDIDATES matching messages; whole words first, prefixes when needed.

    A prefix makes the engine gather every posting of every word it starts (all of "order*"
    before the first result; 13-17 ms on PostgreSQL at 1,000,000 messages for "update*"),
    while whole words are read newest first and stop at the limit. So: whole words first; when
    they already fill the page (``page`` conversations and one more, to know there is more),
    they are the answer: the words were typed whole, and prefix matches ("updated" for
    "update") would only reorder the page's tail. Otherwise (a word still being typed, a rare
    one) the prefix query runs and ranks both.
    """
    engine = engine_for()
    if parsed.has_prefixes:
        whole = engine.message_candidates(parsed.whole_words(), scope, CANDIDATES)
        if len({c.conversation_id for c in whole}) > page:
            return whole
    return engine.message_candidates(parsed, scope, CANDIDATES)


def _rank(candidates: list[Candidate]) -> list[tuple[Candidate, float]]:
    """The best candidate per conversation with its score, best first."""
    if not candidates:
        return []
    top = max(c.relevance for c in candidates) or 1.0
    now = timezone.now().timestamp()
    best: dict[int, tuple[Candidate, float]] = {}
    for candidate in candidates:
        age_days = max(0.0, now - candidate.sent_epoch) / 86400
        recency = math.pow(0.5, age_days / RECENCY_HALF_LIFE_DAYS)
        relevance = max(candidate.relevance, 0.0) / top
        score = RELEVANCE_WEIGHT * relevance + (1 - RELEVANCE_WEIGHT) * recency
        held = best.get(candidate.conversation_id)
        if held is None or score > held[1]:
            best[candidate.conversation_id] = (candidate, score)
    return sorted(best.values(), key=lambda pair: (-pair[1], -pair[0].message_id))


# --- conversations -----------------------------------------------------------------------------


def _visible(agent: Agent, filters: Filters, scope: Scope) -> QuerySet[Conversation]:
    rows = conversations_visible_to(agent).filter(merged_into__isnull=True)
    if scope.inbox_ids is not None:
        rows = rows.filter(inbox_id__in=scope.inbox_ids)
    if scope.statuses:
        rows = rows.filter(status__in=scope.statuses)
    if scope.assignee == 0:
        rows = rows.filter(assignee__isnull=True)
    elif scope.assignee is not None:
        rows = rows.filter(assignee_id=scope.assignee)
    return rows.select_related("inbox", "customer").only(*_SHOWN)


# What a result shows (the API, the fragment): loading only these keeps the query small.
_SHOWN = [
    "id", "inbox_id", "customer_id", "subject", "status", "assignee_id", "last_message_at",
    "last_message_preview", "inbox__name", "inbox__kind", "customer__name", "customer__email",
    "customer__phone",
]  # fmt: skip


def _conversations(
    agent: Agent,
    filters: Filters,
    scope: Scope,
    exact: identifiers.ExactHits,
    ranked: list[tuple[Candidate, float]],
    parsed: ParsedQuery,
    limit: int,
) -> tuple[list[ConversationHit], bool]:
    exact_ids = _exact_conversation_ids(agent, filters, scope, exact, limit)
    wanted = exact_ids + [
        c.conversation_id for c, _ in ranked if c.conversation_id not in exact_ids
    ]
    # One more than the limit tells whether there is more; the selector drops what the agent
    # may not see (or what no longer passes the filters) before anything is counted.
    window = wanted[: limit + 1 + len(exact_ids)]
    loaded = {c.pk: c for c in _visible(agent, filters, scope).filter(pk__in=window)}
    visible = [pk for pk in window if pk in loaded]
    hits_by_conversation = {c.conversation_id: (c, s) for c, s in ranked}
    hits = []
    for pk in visible[:limit]:
        candidate, score = hits_by_conversation.get(pk, (None, 0.0))
        hits.append(
            ConversationHit(
                conversation=loaded[pk],
                exact=pk in exact_ids,
                score=score,
                message_id=candidate.message_id if candidate else None,
            )
        )
    _add_snippets(hits, parsed)
    more = len(visible) > limit or len(wanted) > len(window)
    return hits, more


def _exact_conversation_ids(
    agent: Agent, filters: Filters, scope: Scope, exact: identifiers.ExactHits, limit: int
) -> list[int]:
    ids = list(exact.conversation_ids)
    if exact.customer_ids:
        theirs = (
            _visible(agent, filters, scope)
            .filter(customer_id__in=exact.customer_ids)
            .order_by("-last_message_at", "-id")
            .values_list("pk", flat=True)[:limit]
        )
        ids.extend(pk for pk in theirs if pk not in ids)
    if ids and (filters.since or filters.until):
        dated = _visible(agent, filters, scope).filter(pk__in=ids)
        if filters.since:
            dated = dated.filter(last_message_at__gte=filters.since)
        if filters.until:
            dated = dated.filter(last_message_at__lt=filters.until)
        keep = set(dated.values_list("pk", flat=True))
        ids = [pk for pk in ids if pk in keep]
    return ids


def _add_snippets(hits: list[ConversationHit], parsed: ParsedQuery) -> None:
    ids = [hit.message_id for hit in hits if hit.message_id is not None]
    texts = dict(Message.objects.filter(pk__in=ids).values_list("pk", "text"))
    for hit in hits:
        if hit.message_id is not None and hit.message_id in texts:
            hit.snippet = snippet(texts[hit.message_id], parsed)
        else:
            hit.snippet = snippet(hit.conversation.last_message_preview, parsed)


# --- customers -------------------------------------------------------------------------------


def _customers(
    agent: Agent,
    inbox_ids: list[int] | None,
    exact: identifiers.ExactHits,
    parsed: ParsedQuery,
    limit: int,
) -> list[CustomerHit]:
    wanted = list(dict.fromkeys([*exact.customer_ids, *_customer_candidates(parsed)]))
    if not wanted:
        return []
    if agent.is_active and agent.sees_every_inbox and inbox_ids is None:
        visible = wanted
    else:
        # customers_visible_to's rule (a customer is visible through a conversation the agent
        # may see), checked from the candidates' side: conversations are indexed by customer,
        # while the selector's "every customer of my inboxes" is a scan at scale.
        reachable = conversations_visible_to(agent).filter(customer_id__in=wanted)
        if inbox_ids is not None:
            reachable = reachable.filter(inbox_id__in=inbox_ids)
        visible = list(reachable.values_list("customer_id", flat=True).distinct())
    loaded = Customer.objects.filter(pk__in=visible, merged_into__isnull=True).in_bulk()
    exact_ids = set(exact.customer_ids)
    return [CustomerHit(loaded[pk], pk in exact_ids) for pk in wanted if pk in loaded][:limit]


def _customer_candidates(parsed: ParsedQuery) -> list[int]:
    if parsed.is_empty:
        return []
    engine = engine_for()
    found = []
    if parsed.has_prefixes:
        found = engine.customer_candidates(parsed.whole_words(), CUSTOMER_CANDIDATES)
    if len(found) < CUSTOMER_CANDIDATES:
        found = engine.customer_candidates(parsed, CUSTOMER_CANDIDATES)
    return [pk for pk, _ in sorted(found, key=lambda pair: -pair[1])]
