"""The domain-event bus.

Actions call :func:`emit` inside their transaction; subscribers run only **after commit**, so no
subscriber ever sees (or acts on) a change that was rolled back. Subscribers must be quick: one
that needs time enqueues a task. A failing subscriber is logged and never breaks the action that
emitted the event, nor the other subscribers.

Django signals are deliberately not used for domain behaviour: the list of events is explicit
(:class:`DomainEvent`) and every subscription is registered through :func:`subscribe`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)

Handler = Callable[["DomainEvent"], None]
_subscribers: dict[str, list[Handler]] = defaultdict(list)


@dataclass(frozen=True, slots=True)
class DomainEvent:
    name: str
    payload: dict[str, Any] = field(default_factory=dict)


def subscribe(name: str) -> Callable[[Handler], Handler]:
    """Decorator: run ``handler(event)`` after every committed ``name`` event ("*" for all)."""

    def register(handler: Handler) -> Handler:
        if handler not in _subscribers[name]:
            _subscribers[name].append(handler)
        return handler

    return register


def unsubscribe(name: str, handler: Handler) -> None:
    if handler in _subscribers[name]:
        _subscribers[name].remove(handler)


def emit(name: str, **payload: Any) -> None:
    """Queue ``name`` for delivery once the current transaction commits (at once outside one)."""
    event = DomainEvent(name=name, payload=payload)
    transaction.on_commit(lambda: _dispatch(event), robust=True)


def _dispatch(event: DomainEvent) -> None:
    for handler in [*_subscribers.get(event.name, ()), *_subscribers.get("*", ())]:
        try:
            handler(event)
        except Exception:
            logger.exception("subscriber %r failed on %s", handler, event.name)
