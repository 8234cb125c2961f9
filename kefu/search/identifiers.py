"""Exact lookups, routed before full text: what someone types when a customer is on the line.

A query that *is* an identifier (the whole query, trimmed) goes to the resolvers below, each
answering with exact hits the agent may see:

- ``#42`` or ``42``: conversation number 42;
- an email address: the customer owning that email identity (normalized as on the way in);
- a phone number in any format (``+86 138 0013 8000``, ``(415) 555-2671``, ``0044 20 7946
  0958``): the customers owning it, compared in E.164 (``kefu.customers.identities``);
- order numbers (``#1001``, ``1001``, Amazon ``123-1234567-1234567``) and tracking numbers:
  the resolver in :mod:`kefu.search.orders` (added with :func:`register`); the full text also
  finds them as terms of the messages that mention them.

Resolvers get the agent and must scope what they return themselves (selectors); the service
re-checks conversations and customers through the selectors anyway.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Q

from kefu.accounts.models import Agent
from kefu.core.errors import InvalidInput
from kefu.customers.identities import normalize_email, normalize_phone
from kefu.customers.models import Customer, Identity, IdentityKind


@dataclass(frozen=True, slots=True)
class Identifier:
    """What the query looked like: ``kind`` in email, phone, number, order, tracking."""

    kind: str
    value: str


@dataclass(slots=True)
class ExactHits:
    """Ids found by exact lookups, best first, per result group."""

    identifiers: list[Identifier] = field(default_factory=list)
    conversation_ids: list[int] = field(default_factory=list)
    customer_ids: list[int] = field(default_factory=list)
    # Each order hit is a dict the commerce resolver builds (already scoped to the agent).
    orders: list[dict] = field(default_factory=list)


Resolver = Callable[[str, list[Identifier], Agent, ExactHits], None]
_resolvers: list[Resolver] = []

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^[+(\d][\d\s().\-/+]{5,}$")
_NUMBER = re.compile(r"^#?(\d{1,18})$")
_AMAZON_ORDER = re.compile(r"^\d{3}-\d{7}-\d{7}$")
# UPU S10 (LX123456789CN), UPS (1Z...), long digit-only carrier numbers (USPS, FedEx, DHL).
_TRACKING = re.compile(r"^(?:[A-Z]{2}\d{9}[A-Z]{2}|1Z[0-9A-Z]{16}|\d{12,22})$", re.IGNORECASE)
_SEPARATORS = re.compile(r"[\s\-]+")


def register(resolver: Resolver) -> Resolver:
    """Add an exact-lookup resolver (``kefu.search.orders`` adds orders and shipments).

    ``resolver(query, identifiers, agent, hits)`` appends what it finds to ``hits``; it is
    called for every query that looks like an identifier (see :func:`classify`).
    """
    if resolver not in _resolvers:
        _resolvers.append(resolver)
    return resolver


def classify(query: str) -> list[Identifier]:
    """Every reading of ``query`` as an identifier (a number can be a conversation, an order
    and a phone all at once); empty for ordinary text."""
    value = query.strip()
    found: list[Identifier] = []
    if not value or len(value) > 64:
        return found
    if _EMAIL.match(value):
        with contextlib.suppress(InvalidInput):
            found.append(Identifier("email", normalize_email(value)))
        return found
    number = _NUMBER.match(value)
    if number:
        found.append(Identifier("number", str(int(number.group(1)))))
        found.append(Identifier("order", number.group(1)))
    if _AMAZON_ORDER.match(value):
        found.append(Identifier("order", value))
    # Carriers print tracking numbers in groups ("1Z 999 AA1 01 2345 6784"): read them whole.
    compact = _SEPARATORS.sub("", value)
    if _TRACKING.match(compact) and not _AMAZON_ORDER.match(value):
        found.append(Identifier("tracking", compact.upper()))
    digits = sum(ch.isdigit() for ch in value)
    if _PHONE.match(value) and 7 <= digits <= 15 and not value.startswith("#"):
        found.extend(Identifier("phone", number) for number in _phone_readings(value))
    return found


def _phone_readings(value: str) -> list[str]:
    """E.164 readings of a phone typed any way. Without a country code a number reads
    differently per country: try the default region and every store's country, and the digits
    as an international number without its "+" (``8613800138000``) or with a ``00`` call
    prefix however punctuated (``(0086) 138-0013-8000``)."""
    from kefu.commerce.models import Store

    regions = [settings.KEFU_DEFAULT_PHONE_REGION]
    regions += [c.upper() for c in Store.objects.values_list("country", flat=True).distinct() if c]
    readings: list[str] = []
    attempts = [(value, region) for region in dict.fromkeys(regions)]
    digits = "".join(ch for ch in value if ch.isdigit())
    if digits.startswith("00"):  # the international call prefix, however punctuated: (0086)
        attempts.append(("+" + digits[2:], "ZZ"))
    elif value[0].isdigit():
        attempts.append(("+" + digits, "ZZ"))
    for raw, region in attempts:
        try:
            number = normalize_phone(raw, region)
        except InvalidInput:
            continue
        if number not in readings:
            readings.append(number)
    return readings


def resolve(query: str, agent: Agent) -> ExactHits:
    """The exact hits for ``query`` (unscoped ids, except orders: the service scopes them)."""
    hits = ExactHits(identifiers=classify(query))
    if not hits.identifiers:
        return hits
    for resolver in [_conversation_numbers, _customers, *_resolvers]:
        resolver(query, hits.identifiers, agent, hits)
    return hits


def _conversation_numbers(query: str, found: list[Identifier], agent: Agent, hits: ExactHits):  # type: ignore[no-untyped-def]
    for identifier in found:
        if identifier.kind == "number":
            hits.conversation_ids.append(int(identifier.value))


def _customers(query: str, found: list[Identifier], agent: Agent, hits: ExactHits):  # type: ignore[no-untyped-def]
    # Identities are the source of truth (Customer.email/phone are copies for display, and
    # not indexed): one lookup on their (kind, value) unique index.
    condition = Q()
    for identifier in found:
        if identifier.kind == "email":
            condition |= Q(kind=IdentityKind.EMAIL, value=identifier.value)
        elif identifier.kind == "phone":
            # WhatsApp ids are the number's digits (with or without the "+").
            kinds = [IdentityKind.PHONE, IdentityKind.WHATSAPP]
            condition |= Q(kind__in=kinds, value__in=[identifier.value, identifier.value[1:]])
    if not condition:
        return
    owners = set(Identity.objects.filter(condition).values_list("customer_id", flat=True))
    live = Customer.objects.filter(pk__in=owners).values_list("pk", "merged_into_id")
    # A merged-away customer's identities moved to the target; follow the pointer anyway.
    ids = {merged_into or pk for pk, merged_into in live}
    hits.customer_ids.extend(sorted(ids))
