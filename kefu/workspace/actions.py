"""Writes of the workspace itself (its own preferences); conversation changes are elsewhere."""

from __future__ import annotations

from django.db import transaction

from kefu.accounts.models import Agent
from kefu.core.errors import InvalidInput, NotFound
from kefu.workspace.models import SavedFilter
from kefu.workspace.selectors import ListQuery

MAX_SAVED_FILTERS = 50


@transaction.atomic
def save_filter(*, agent: Agent, name: str, query: ListQuery) -> SavedFilter:
    """Save (or overwrite, by name) the agent's current list as a named view."""
    name = name.strip()
    if not name or len(name) > 80:
        raise InvalidInput("a saved view needs a name of 1 to 80 characters", field="name")
    existing = SavedFilter.objects.select_for_update().filter(agent=agent, name=name).first()
    if existing is None and SavedFilter.objects.filter(agent=agent).count() >= MAX_SAVED_FILTERS:
        raise InvalidInput(f"at most {MAX_SAVED_FILTERS} saved views", field="name")
    params = {k: str(v) for k, v in query.params().items()}
    saved, _ = SavedFilter.objects.update_or_create(
        agent=agent, name=name, defaults={"params": params}
    )
    return saved


def delete_filter(*, agent: Agent, filter_id: int) -> None:
    deleted, _ = SavedFilter.objects.filter(agent=agent, pk=filter_id).delete()
    if not deleted:
        raise NotFound(f"saved view {filter_id} not found")
