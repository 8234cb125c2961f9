"""Claims for the commerce app's background work, kept in :class:`CommerceState` rows.

- A **lease** lets one worker at a time run a job that must stay in order (the webhook drain).
  A worker that finds the lease taken marks it dirty, and the holder goes round once more
  before it lets go, so work committed meanwhile is never stranded.
- A **turn** lets one periodic chain run: a self-rescheduling task claims its turn by stamping
  the row only when no turn started in the last half interval; a chain that loses the claim
  ends, so duplicates die out to one chain (the pattern of ``automation.tasks.sla_tick``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from kefu.commerce.models import CommerceState

LEASE = timedelta(seconds=60)


def _row(name: str) -> None:
    CommerceState.objects.get_or_create(name=name)


def acquire(name: str, owner: str) -> bool:
    """Take the lease ``name`` for ``owner``; False (and the holder asked for another round)
    when someone else holds it."""
    _row(name)
    for _ in range(3):
        now = timezone.now()
        held = CommerceState.objects.filter(name=name, lease_until__gt=now).exclude(
            lease_owner=owner
        )
        if held.update(dirty=True):
            return False
        free = CommerceState.objects.filter(name=name).filter(
            Q(lease_until__isnull=True) | Q(lease_until__lte=now)
        )
        if free.update(lease_owner=owner, lease_until=now + LEASE, dirty=False):
            return True
    return False


def extend(name: str, owner: str) -> None:
    CommerceState.objects.filter(name=name, lease_owner=owner).update(
        lease_until=timezone.now() + LEASE
    )


def release(name: str, owner: str) -> bool:
    """Let go unless someone asked for another round meanwhile (then: False, go round)."""
    mine = CommerceState.objects.filter(name=name, lease_owner=owner)
    if mine.filter(dirty=False).update(lease_owner="", lease_until=None):
        return True
    mine.update(dirty=False, lease_until=timezone.now() + LEASE)
    return False


def drop(name: str, owner: str) -> None:
    """Let go whatever happens (after an error)."""
    CommerceState.objects.filter(name=name, lease_owner=owner).update(
        lease_owner="", lease_until=None, dirty=False
    )


def claim_turn(name: str, interval: float, *, now: datetime | None = None) -> bool:
    """Stamp ``name`` when no turn started in the last half ``interval`` seconds."""
    now = now or timezone.now()
    _row(name)
    recent = now - timedelta(seconds=interval / 2)
    return bool(
        CommerceState.objects.filter(name=name)
        .filter(Q(at__isnull=True) | Q(at__lt=recent))
        .update(at=now)
    )


def last_turn(name: str) -> datetime | None:
    return CommerceState.objects.filter(name=name).values_list("at", flat=True).first()
