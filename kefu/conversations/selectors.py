"""Scoped reads. Every list and detail a person or token asks for goes through here.

An agent sees the conversations of the inboxes they are a member of, directly or through a
team; admins and superusers see every inbox. Anything else is "not found" (never "forbidden"),
so ids of other teams' conversations cannot be probed.
"""

from __future__ import annotations

import threading
import time

from django.db.models import Q, QuerySet

from kefu.accounts.models import Agent
from kefu.conversations.models import Conversation, Inbox
from kefu.core.errors import NotFound


def inboxes_visible_to(agent: Agent) -> QuerySet[Inbox]:
    if not agent.is_active:
        return Inbox.objects.none()
    if agent.sees_every_inbox:
        return Inbox.objects.all()
    return Inbox.objects.filter(Q(members=agent) | Q(teams__members=agent)).distinct()


def visible_inbox_ids(agent: Agent) -> list[int]:
    """The ids of ``agent``'s inboxes, computed once per agent object (one small query)."""
    cached = getattr(agent, "_kefu_inbox_ids", None)
    if cached is None:
        cached = sorted(set(inboxes_visible_to(agent).values_list("pk", flat=True)))
        agent._kefu_inbox_ids = cached  # type: ignore[attr-defined]
    return cached


def agent_can_access_inbox(agent: Agent, inbox_id: int) -> bool:
    if not agent.is_active:
        return False
    if agent.sees_every_inbox:
        return True
    return inbox_id in visible_inbox_ids(agent)


def conversations_visible_to(agent: Agent) -> QuerySet[Conversation]:
    if agent.sees_every_inbox and agent.is_active:
        return Conversation.objects.all()
    return Conversation.objects.filter(inbox_id__in=visible_inbox_ids(agent))


def get_conversation(agent: Agent, conversation_id: int) -> Conversation:
    """The conversation if ``agent`` may see it; NotFound otherwise."""
    found = (
        conversations_visible_to(agent)
        .select_related("inbox", "customer", "assignee", "team")
        .filter(pk=conversation_id)
        .first()
    )
    if found is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return found


def get_inbox(agent: Agent, inbox_id: int) -> Inbox:
    found = inboxes_visible_to(agent).select_related("store").filter(pk=inbox_id).first()
    if found is None:
        raise NotFound(f"inbox {inbox_id} not found")
    return found


# API ingestion looks its inbox up for every message it takes. A per-process memo of the answer
# for (agent, inbox) saves that query, a sizeable share of a single message's cost. This process
# forgets at once whenever an inbox, a store, an agent or a membership changes here
# (``forget_inboxes``, wired in apps.py); other processes within INBOX_MEMO_SECONDS, as with
# API tokens (docs/decisions.md). Only successful lookups are kept: a 404 is never memoized.
INBOX_MEMO_SECONDS = 10.0
_inbox_memo: dict[tuple[int, int], tuple[float, Inbox]] = {}
_inbox_memo_lock = threading.Lock()


def get_inbox_for_ingest(agent: Agent, inbox_id: int) -> Inbox:
    """``get_inbox`` for the ingest path: the same answer, from this process's memo when fresh.

    The returned Inbox (with its store) is shared between requests: read it, never change it.
    """
    if not agent.is_active:
        raise NotFound(f"inbox {inbox_id} not found")
    key = (0 if agent.sees_every_inbox else agent.pk, inbox_id)
    memo = _inbox_memo.get(key)
    if memo is not None and memo[0] > time.monotonic():
        return memo[1]
    found = get_inbox(agent, inbox_id)
    with _inbox_memo_lock:
        if len(_inbox_memo) > 10_000:
            _inbox_memo.clear()
        _inbox_memo[key] = (time.monotonic() + INBOX_MEMO_SECONDS, found)
    return found


def forget_inboxes() -> None:
    """Drop this process's memo of inbox lookups (after any change to inboxes or access)."""
    with _inbox_memo_lock:
        _inbox_memo.clear()
