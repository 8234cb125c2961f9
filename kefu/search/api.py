"""REST API: ``GET /api/v1/search?q=...`` (session or bearer token, like the rest of the API)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django.http import HttpRequest
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from ninja import Field, Query, Router, Schema

from kefu.accounts.models import Agent
from kefu.core.errors import InvalidInput
from kefu.search import service

router = Router(tags=["search"])


class SearchParams(Schema):
    q: str = Field(..., max_length=200, description="words, a phone, an email, #number...")
    status: str | None = Field(None, description="comma-separated statuses")
    inbox: int | None = None
    channel: str | None = Field(None, description="inbox kind: email, chat, whatsapp...")
    assignee: str | None = Field(None, description="an agent id, 'me' or 'none'")
    since: str | None = Field(None, description="date or ISO datetime (inclusive)")
    until: str | None = Field(None, description="date (inclusive) or ISO datetime (exclusive)")
    limit: int = service.DEFAULT_LIMIT


class IdentifierOut(Schema):
    kind: str
    value: str


class ConversationHitOut(Schema):
    id: int
    number: str
    subject: str
    status: str
    inbox_id: int
    inbox: str
    channel: str
    customer_id: int
    customer: str
    assignee_id: int | None
    last_message_at: datetime
    message_id: int | None = Field(description="the best-matching message, if text matched")
    snippet: str = Field(description="HTML: escaped text, matches in <mark>")
    exact: bool = Field(description="found by an exact identifier")
    score: float


class CustomerHitOut(Schema):
    id: int
    name: str
    email: str
    phone: str
    exact: bool


class OrderHitOut(Schema):
    id: int
    number: str = Field(description="as shown to the customer (#1001)")
    external_id: str = Field(description="the platform's id")
    store_id: int
    store: str
    customer_id: int | None
    status: str
    placed_at: datetime
    summary: str
    url: str = Field(description="the order's page, or '' where there is none")


class SearchOut(Schema):
    query: str
    identifiers: list[IdentifierOut]
    conversations: list[ConversationHitOut]
    customers: list[CustomerHitOut]
    orders: list[OrderHitOut] = Field(description="found by order or tracking number")
    more: bool = Field(description="more conversations matched than were returned")


def parse_bound(value: str | None, field: str, *, end: bool) -> datetime | None:
    """A date (a whole day: ``until`` includes it) or an ISO datetime (naive = UTC)."""
    if not value:
        return None
    try:
        # A bare date first: parse_datetime would read "2025-01-31" as its midnight.
        day = parse_date(value)
        moment = None if day else parse_datetime(value)
    except ValueError:
        moment = day = None
    if moment is None and day is None:
        raise InvalidInput(f"{field} must be a date or an ISO datetime", field=field)
    if day is not None:
        moment = datetime.combine(day + timedelta(days=1) if end else day, time.min)
    assert moment is not None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    return moment


def filters_from(params: SearchParams) -> service.Filters:
    return service.Filters(
        statuses=[s.strip() for s in (params.status or "").split(",") if s.strip()],
        inbox_id=params.inbox,
        channel=params.channel or None,
        assignee=params.assignee or None,
        since=parse_bound(params.since, "since", end=False),
        until=parse_bound(params.until, "until", end=True),
    )


def results_out(results: service.SearchResults) -> dict:
    return {
        "query": results.query,
        "identifiers": [{"kind": i.kind, "value": i.value} for i in results.identifiers],
        "conversations": [_conversation(hit) for hit in results.conversations],
        "customers": [
            {
                "id": hit.customer.pk,
                "name": hit.customer.name,
                "email": hit.customer.email,
                "phone": hit.customer.phone,
                "exact": hit.exact,
            }
            for hit in results.customers
        ],
        "orders": results.orders,
        "more": results.more,
    }


def _conversation(hit: service.ConversationHit) -> dict:
    c = hit.conversation
    return {
        "id": c.pk,
        "number": c.number,
        "subject": c.subject,
        "status": c.status,
        "inbox_id": c.inbox_id,
        "inbox": c.inbox.name,
        "channel": c.inbox.kind,
        "customer_id": c.customer_id,
        "customer": str(c.customer),
        "assignee_id": c.assignee_id,
        "last_message_at": c.last_message_at,
        "message_id": hit.message_id,
        "snippet": str(hit.snippet),
        "exact": hit.exact,
        "score": round(hit.score, 4),
    }


@router.get("/search", response=SearchOut)
def search(request: HttpRequest, params: Query[SearchParams]):  # type: ignore[no-untyped-def]
    """Conversations, customers and orders matching ``q``.

    Exact identifiers first (conversation number, email, phone in any format, order numbers),
    then full text ranked by relevance and recency; only what the caller may see, counts
    included.
    """
    agent: Agent = request.auth  # type: ignore[attr-defined]
    results = service.search(
        agent=agent, q=params.q, filters=filters_from(params), limit=params.limit
    )
    return results_out(results)
