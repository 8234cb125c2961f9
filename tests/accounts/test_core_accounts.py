"""Agents, teams and API tokens: creation, audit trail, token authentication and revocation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from kefu.accounts import actions
from kefu.accounts.models import Agent, ApiToken, AuditLog, Role, hash_token
from kefu.core.errors import InvalidInput
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_token_memo():
    """Each test starts with an empty per-process token memo."""
    actions._recent_tokens.clear()
    yield
    actions._recent_tokens.clear()


# --- agents and teams --------------------------------------------------------------------------


def test_create_agent_sets_the_role_and_records_it():
    admin = AgentFactory(role=Role.ADMIN)

    lead = actions.create_agent(
        username="lina", password="s3cret pass", role=Role.LEAD, email="lina@example.com",
        display_name="Lina W.", language="zh-hans", actor=admin,
    )  # fmt: skip

    lead.refresh_from_db()
    assert (lead.role, lead.email, lead.name, lead.language) == (
        Role.LEAD, "lina@example.com", "Lina W.", "zh-hans",
    )  # fmt: skip
    assert lead.check_password("s3cret pass")
    assert not lead.is_staff and not lead.sees_every_inbox
    entry = AuditLog.objects.get()
    assert (entry.actor_id, entry.action, entry.object_type, entry.object_id) == (
        admin.pk, "agent.created", "accounts.agent", str(lead.pk),
    )  # fmt: skip
    assert entry.data == {"role": Role.LEAD}


def test_an_admin_is_staff_and_sees_every_inbox():
    admin = actions.create_agent(username="root", password=None, role=Role.ADMIN)
    assert admin.is_staff and admin.sees_every_inbox
    assert not admin.has_usable_password()


def test_create_agent_refuses_an_unknown_role_and_a_taken_name():
    actions.create_agent(username="ana", password=None)

    with pytest.raises(InvalidInput) as role:
        actions.create_agent(username="bob", password=None, role="owner")
    with pytest.raises(InvalidInput) as taken:
        actions.create_agent(username="ana", password=None)

    assert (role.value.field, taken.value.field) == ("role", "username")
    assert list(Agent.objects.values_list("username", flat=True)) == ["ana"]
    assert AuditLog.objects.count() == 1


def test_create_team_adds_members_and_is_idempotent_by_name():
    ana, bob = AgentFactory(), AgentFactory()

    team = actions.create_team(name="Returns", members=[ana])
    same = actions.create_team(name="Returns", members=[bob])

    assert same.pk == team.pk
    assert set(team.members.all()) == {ana, bob}


def test_an_agents_name_falls_back_to_full_name_then_username():
    assert AgentFactory(username="u1").name == "u1"
    assert AgentFactory(username="u2", first_name="Ana", last_name="López").name == "Ana López"
    assert AgentFactory(username="u3", display_name="Ana L.", first_name="Ana").name == "Ana L."


# --- tokens ------------------------------------------------------------------------------------


def test_a_token_is_stored_hashed_and_shown_once(agent):
    token, raw = actions.create_token(user=agent, name="zapier", actor=agent)

    assert raw.startswith("kefu_") and len(raw) > 40
    row = ApiToken.objects.get()
    assert row.pk == token.pk
    assert row.key_hash == hash_token(raw) and raw not in row.key_hash
    assert row.prefix == raw[:12]
    assert (row.name, row.user_id, row.revoked_at, row.last_used_at) == (
        "zapier",
        agent.pk,
        None,
        None,
    )
    assert AuditLog.objects.filter(action="token.created", object_id=str(row.pk)).exists()


def test_two_tokens_never_share_a_secret(agent):
    secrets = {actions.create_token(user=agent, name="t")[1] for _ in range(20)}
    assert len(secrets) == 20


def test_an_empty_token_name_gets_a_default(agent):
    token, _ = actions.create_token(user=agent, name="")
    assert token.name == "token"


def test_authenticate_finds_the_user_and_records_the_use(agent):
    _, raw = actions.create_token(user=agent, name="t")

    user = actions.authenticate_token(raw)

    assert user == agent
    assert ApiToken.objects.get().last_used_at is not None


@pytest.mark.parametrize(
    "raw",
    ["", "kefu_", "kefu_not-a-real-token", "Bearer kefu_x", "x" * 300, "kefu_" + "x" * 300],
)
def test_unknown_tokens_are_refused(agent, raw, django_assert_max_num_queries):
    actions.create_token(user=agent, name="t")
    with django_assert_max_num_queries(1):
        assert actions.authenticate_token(raw) is None


def test_a_token_without_the_prefix_costs_no_query(agent, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert actions.authenticate_token("abc") is None


def test_a_revoked_token_is_refused_at_once_even_when_memoized(agent):
    token, raw = actions.create_token(user=agent, name="t")
    assert actions.authenticate_token(raw) == agent

    actions.revoke_token(token=token, actor=agent)

    assert actions.authenticate_token(raw) is None
    assert ApiToken.objects.get().revoked_at is not None
    assert AuditLog.objects.filter(action="token.revoked").count() == 1


def test_revoking_twice_keeps_the_first_time(agent):
    token, _ = actions.create_token(user=agent, name="t")
    actions.revoke_token(token=token, actor=agent)
    first = ApiToken.objects.get().revoked_at
    actions.revoke_token(token=token, actor=agent)
    assert ApiToken.objects.get().revoked_at == first


def test_the_token_of_an_inactive_user_is_refused(agent):
    _, raw = actions.create_token(user=agent, name="t")
    agent.is_active = False
    agent.save()
    assert actions.authenticate_token(raw) is None


def test_a_memoized_token_costs_no_query_and_gives_a_fresh_agent(agent, django_assert_num_queries):
    _, raw = actions.create_token(user=agent, name="t")
    first = actions.authenticate_token(raw)
    first._kefu_inbox_ids = [1]  # per-request state cached on the object

    with django_assert_num_queries(0):
        second = actions.authenticate_token(raw)

    assert second == agent and second is not first
    assert not hasattr(second, "_kefu_inbox_ids")
    assert (second.username, second.role, second.is_active) == (
        agent.username, agent.role, True,
    )  # fmt: skip


def test_forgetting_a_user_drops_their_memoized_tokens(agent):
    other = AgentFactory()
    _, mine = actions.create_token(user=agent, name="t")
    _, theirs = actions.create_token(user=other, name="t")
    actions.authenticate_token(mine)
    actions.authenticate_token(theirs)
    agent.is_active = False
    agent.save()

    actions.forget_user_tokens(agent)

    assert actions.authenticate_token(mine) is None
    assert actions.authenticate_token(theirs) == other


def test_last_used_is_written_at_most_every_few_minutes(agent, django_assert_num_queries):
    token, raw = actions.create_token(user=agent, name="t")
    recently = timezone.now() - timedelta(minutes=1)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=recently)

    with django_assert_num_queries(1):  # the lookup only, no write
        actions.authenticate_token(raw)
    assert ApiToken.objects.get().last_used_at == recently

    actions._recent_tokens.clear()
    long_ago = timezone.now() - actions.LAST_USED_RESOLUTION - timedelta(seconds=1)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=long_ago)
    with django_assert_num_queries(2):  # the lookup and the write
        actions.authenticate_token(raw)
    assert ApiToken.objects.get().last_used_at > long_ago
