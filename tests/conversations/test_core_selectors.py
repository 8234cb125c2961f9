"""Scoped reads: who sees which inbox and conversation. Anything not visible is NotFound."""

from __future__ import annotations

import pytest
from django.utils import timezone

from kefu.accounts.models import Role
from kefu.conversations.models import Conversation
from kefu.conversations.selectors import (
    agent_can_access_inbox,
    conversations_visible_to,
    get_conversation,
    get_inbox,
    inboxes_visible_to,
    visible_inbox_ids,
)
from kefu.core.errors import NotFound
from tests.factories import AgentFactory, ConversationFactory, InboxFactory, TeamFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(inbox):
    """The agent's inbox, a team inbox, a foreign inbox; one conversation in each."""
    team_inbox = InboxFactory()
    foreign = InboxFactory()
    team = TeamFactory()
    team_inbox.teams.add(team)
    return {
        "inbox": inbox,
        "team_inbox": team_inbox,
        "foreign": foreign,
        "team": team,
        "mine": ConversationFactory(inbox=inbox),
        "team_conversation": ConversationFactory(inbox=team_inbox),
        "foreign_conversation": ConversationFactory(inbox=foreign),
    }


def test_an_agent_sees_direct_and_team_inboxes_only(world, agent):
    world["team"].members.add(agent)

    assert set(inboxes_visible_to(agent)) == {world["inbox"], world["team_inbox"]}
    assert visible_inbox_ids(agent) == sorted([world["inbox"].pk, world["team_inbox"].pk])
    assert set(conversations_visible_to(agent)) == {world["mine"], world["team_conversation"]}
    assert agent_can_access_inbox(agent, world["team_inbox"].pk)
    assert not agent_can_access_inbox(agent, world["foreign"].pk)


def test_an_inbox_reachable_twice_is_listed_once(world, agent):
    world["team"].members.add(agent)
    world["inbox"].teams.add(world["team"])
    assert inboxes_visible_to(agent).filter(pk=world["inbox"].pk).count() == 1


def test_foreign_and_missing_ids_are_both_not_found(world, agent):
    assert get_conversation(agent, world["mine"].pk) == world["mine"]
    assert get_inbox(agent, world["inbox"].pk) == world["inbox"]
    for lookup, pk in [
        (get_conversation, world["foreign_conversation"].pk),
        (get_conversation, 999_999),
        (get_inbox, world["foreign"].pk),
        (get_inbox, 999_999),
    ]:
        with pytest.raises(NotFound):
            lookup(agent, pk)


@pytest.mark.parametrize("how", ["role", "superuser"])
def test_admins_see_everything(world, how):
    admin = AgentFactory(role=Role.ADMIN) if how == "role" else AgentFactory(is_superuser=True)
    assert inboxes_visible_to(admin).count() == 3
    assert conversations_visible_to(admin).count() == 3
    assert agent_can_access_inbox(admin, world["foreign"].pk)
    assert get_conversation(admin, world["foreign_conversation"].pk)


def test_an_agent_without_inboxes_sees_nothing(world, outsider):
    assert list(inboxes_visible_to(outsider)) == []
    assert list(conversations_visible_to(outsider)) == []
    with pytest.raises(NotFound):
        get_conversation(outsider, world["mine"].pk)


@pytest.mark.parametrize("role", [Role.AGENT, Role.ADMIN])
def test_an_inactive_person_sees_nothing(world, role):
    person = AgentFactory(role=role, is_active=False)
    world["inbox"].members.add(person)
    assert list(inboxes_visible_to(person)) == []
    assert list(conversations_visible_to(person)) == []
    assert not agent_can_access_inbox(person, world["inbox"].pk)


def test_the_visible_inbox_ids_are_read_once_per_agent_object(
    world, agent, django_assert_num_queries
):
    visible_inbox_ids(agent)
    with django_assert_num_queries(0):
        assert agent_can_access_inbox(agent, world["inbox"].pk)
        assert not agent_can_access_inbox(agent, world["foreign"].pk)


def test_a_conversation_list_is_one_query(world, agent, django_assert_num_queries):
    with django_assert_num_queries(2):  # the agent's inbox ids, then the conversations
        rows = list(conversations_visible_to(agent))
    assert rows == [world["mine"]]


def test_get_conversation_loads_what_the_detail_shows(world, agent, django_assert_num_queries):
    Conversation.objects.filter(pk=world["mine"].pk).update(last_message_at=timezone.now())
    visible_inbox_ids(agent)
    with django_assert_num_queries(1):
        found = get_conversation(agent, world["mine"].pk)
        _ = (found.inbox.name, found.customer.name, found.assignee, found.team)
