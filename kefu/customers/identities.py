"""Normalization of identity values, so one person matches however they typed their details."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from kefu.core.errors import InvalidInput
from kefu.customers.models import IdentityKind

MAX_VALUE = 254


@dataclass(frozen=True, slots=True)
class IdentityRef:
    """A (kind, normalized value) pair as the pipeline passes it around."""

    kind: str
    value: str


def normalize_email(raw: str) -> str:
    value = raw.strip().lower()
    try:
        validate_email(value)
    except ValidationError:
        raise InvalidInput(f"not a valid email address: {raw!r}", field="email") from None
    return value


def normalize_phone(raw: str, default_region: str) -> str:
    """E.164 (``+8613800138000``) from any common way of writing a number."""
    value = raw.strip()
    if value.startswith("00"):
        value = "+" + value[2:]
    try:
        number = phonenumbers.parse(value, None if value.startswith("+") else default_region)
    except phonenumbers.NumberParseException:
        raise InvalidInput(f"not a phone number: {raw!r}", field="phone") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidInput(f"not a possible phone number: {raw!r}", field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_region(country: str | None, fallback: str) -> str:
    """The region local numbers are read in: the store's country, when phonenumbers knows it.

    A lower-case or unknown country would otherwise make every local number unreadable.
    """
    region = (country or "").strip().upper()
    return region if region in phonenumbers.SUPPORTED_REGIONS else fallback


_KINDS = frozenset(IdentityKind.values)  # IdentityKind.values rebuilds a list on every call


def normalize(kind: str, raw: str, *, default_region: str = "US") -> IdentityRef:
    if kind not in _KINDS:
        raise InvalidInput(f"unknown identity kind {kind!r}", field="kind")
    # PostgreSQL text cannot hold NUL (a 500 there, not on SQLite): it is never part of an id.
    raw = raw.replace("\x00", "") if raw else raw
    if not raw or not raw.strip():
        raise InvalidInput(f"empty {kind} identity", field=kind)
    if kind == IdentityKind.EMAIL:
        value = normalize_email(raw)
    elif kind == IdentityKind.PHONE:
        value = normalize_phone(raw, default_region)
    else:
        value = raw.strip()
    # Identity.value holds 254 characters; PostgreSQL would refuse a longer one with a 500.
    if len(value) > MAX_VALUE:
        raise InvalidInput(f"{kind} identity longer than {MAX_VALUE} characters", field=kind)
    return IdentityRef(kind, value)
