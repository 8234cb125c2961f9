"""Agent administration: admins change roles, teams, inboxes and access (audited); team leads
see the pages read-only; agents do not see them at all (404)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from kefu.accounts import actions
from kefu.accounts.models import Agent, AuditLog, Role
from kefu.conversations.models import InboxMembership
from kefu.conversations.selectors import visible_inbox_ids
from kefu.core.events import subscribe, unsubscribe
from tests.accounts_ui.conftest import PASSWORD
from tests.factories import AgentFactory, InboxFactory, TeamFactory

pytestmark = pytest.mark.django_db


def post_forms(html: bytes) -> set[str]:
    """The actions of the page's POST forms."""
    forms = re.findall(rb"<form[^>]*>", html)
    return {
        re.search(rb'action="([^"]*)"', form).group(1).decode() if b"action=" in form else ""
        for form in forms
        if b'method="post"' in form.lower()
    }


def entries(action: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(action=action).order_by("id"))


@pytest.fixture
def access_events():
    seen: list[int] = []

    def handler(event):
        seen.append(event.payload["agent_id"])

    subscribe("agent.access_changed")(handler)
    yield seen
    unsubscribe("agent.access_changed", handler)


def test_the_admin_sees_every_agent(admin_client):
    AgentFactory(username="wei", display_name="Wei Zhang")
    AgentFactory(username="omar", is_active=False)
    response = admin_client.get("/accounts/agents/")
    assert response.status_code == 200
    assert b"Wei Zhang" in response.content and b"omar" in response.content
    found = admin_client.get("/accounts/agents/?q=zhang")
    assert b"Wei Zhang" in found.content and b"omar" not in found.content


def test_setting_a_role_is_audited_and_announced(
    admin_client, admin, access_events, django_capture_on_commit_callbacks
):
    wei = AgentFactory(username="wei")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/accounts/agents/{wei.pk}/role/", {"role": Role.ADMIN})
    assert response.status_code == 302
    wei.refresh_from_db()
    assert wei.role == Role.ADMIN and wei.is_staff
    [entry] = entries("agent.role_changed")
    assert (entry.actor, entry.object_id, entry.data) == (
        admin,
        str(wei.pk),
        {"old": "agent", "new": "admin"},
    )
    assert access_events == [wei.pk]


def test_team_and_inbox_memberships_are_set_exactly_and_audited(admin_client, admin):
    wei = AgentFactory(username="wei")
    kept, dropped, added = InboxFactory(), InboxFactory(), InboxFactory()
    team_a, team_b = TeamFactory(), TeamFactory()
    InboxMembership.objects.create(inbox=kept, agent=wei)
    InboxMembership.objects.create(inbox=dropped, agent=wei)
    team_a.members.add(wei)

    admin_client.post(f"/accounts/agents/{wei.pk}/inboxes/", {"inboxes": [kept.pk, added.pk]})
    admin_client.post(f"/accounts/agents/{wei.pk}/teams/", {"teams": [team_b.pk]})

    assert set(wei.inboxes.all()) == {kept, added}
    assert list(wei.teams.all()) == [team_b]
    [inboxes] = entries("agent.inboxes_changed")
    assert inboxes.data == {"added": [added.pk], "removed": [dropped.pk]}
    [teams] = entries("agent.teams_changed")
    assert teams.data == {"added": [team_b.pk], "removed": [team_a.pk]}
    assert {inboxes.actor, teams.actor} == {admin}


def test_an_unchanged_form_writes_no_audit_entry(admin_client):
    wei = AgentFactory(username="wei", role=Role.AGENT)
    admin_client.post(f"/accounts/agents/{wei.pk}/role/", {"role": Role.AGENT})
    admin_client.post(f"/accounts/agents/{wei.pk}/inboxes/", {})
    assert not AuditLog.objects.filter(object_type="accounts.agent").exists()


def test_a_team_gives_its_members_its_inboxes(admin_client):
    wei = AgentFactory(username="wei")
    team, inbox = TeamFactory(), InboxFactory()
    team.members.add(wei)
    response = admin_client.post(f"/accounts/teams/{team.pk}/", {"inboxes": [inbox.pk]})
    assert response.status_code == 302
    assert visible_inbox_ids(Agent.objects.get(pk=wei.pk)) == [inbox.pk]
    [entry] = entries("team.inboxes_changed")
    assert entry.data == {"added": [inbox.pk], "removed": []}


def test_creating_a_team(admin_client):
    response = admin_client.post("/accounts/teams/", {"name": "Returns"})
    assert response.status_code == 302
    assert entries("team.created")[0].data == {"members": []}


def test_deactivation_ends_sessions_and_tokens_and_is_audited(admin_client, admin):
    wei = AgentFactory(username="wei")
    _, token = actions.create_token(user=wei, name="cli")
    elsewhere = Client()
    elsewhere.force_login(wei)
    assert elsewhere.get("/accounts/preferences/").status_code == 200
    assert actions.authenticate_token(token) is not None

    response = admin_client.post(f"/accounts/agents/{wei.pk}/active/", {"active": "0"})

    assert response.status_code == 302
    assert elsewhere.get("/accounts/preferences/").status_code == 302  # to the sign-in page
    assert actions.authenticate_token(token) is None
    login = Client().post("/accounts/login/", {"username": "wei", "password": PASSWORD})
    assert login.status_code == 200
    assert [e.actor for e in entries("agent.deactivated")] == [admin]

    admin_client.post(f"/accounts/agents/{wei.pk}/active/", {"active": "1"})
    assert Agent.objects.get(pk=wei.pk).is_active
    assert len(entries("agent.activated")) == 1


def test_the_last_admin_can_neither_leave_nor_be_demoted(admin_client, admin):
    demote = admin_client.post(f"/accounts/agents/{admin.pk}/role/", {"role": Role.AGENT})
    assert demote.status_code == 422
    assert b"at least one active admin" in demote.content
    admin_client.post(f"/accounts/agents/{admin.pk}/active/", {"active": "0"})
    admin.refresh_from_db()
    assert admin.role == Role.ADMIN and admin.is_active
    assert not AuditLog.objects.filter(object_type="accounts.agent").exists()


def test_with_a_second_admin_the_first_may_step_down(admin_client, admin):
    AgentFactory(role=Role.ADMIN)
    admin_client.post(f"/accounts/agents/{admin.pk}/role/", {"role": Role.LEAD})
    admin.refresh_from_db()
    assert admin.role == Role.LEAD and not admin.is_staff


def test_the_audit_log_page_lists_changes_newest_first_and_pages_by_id(admin_client, admin):
    team = TeamFactory()
    for n in range(55):
        actions.audit(actor=admin, action="test.entry", obj=team, n=n)
    first = admin_client.get("/accounts/audit/?action=test.entry")
    assert first.status_code == 200
    shown = [entry.data["n"] for entry in first.context["entries"]]
    assert shown == list(range(54, 4, -1))
    older = admin_client.get(
        f"/accounts/audit/?action=test.entry&before={first.context['next_before']}"
    )
    assert [entry.data["n"] for entry in older.context["entries"]] == [4, 3, 2, 1, 0]
    assert older.context["next_before"] is None


# --- who may see what --------------------------------------------------------------------------

READ_PAGES = ["/accounts/agents/", "/accounts/agents/{agent}/", "/accounts/teams/",
              "/accounts/teams/{team}/"]  # fmt: skip
ADMIN_PAGES = ["/accounts/invitations/", "/accounts/audit/"]
CHANGES = [
    ("/accounts/agents/{agent}/role/", {"role": "admin"}),
    ("/accounts/agents/{agent}/teams/", {"teams": []}),
    ("/accounts/agents/{agent}/inboxes/", {"inboxes": []}),
    ("/accounts/agents/{agent}/active/", {"active": "0"}),
    ("/accounts/teams/", {"name": "Sneaky"}),
    ("/accounts/teams/{team}/", {"inboxes": []}),
    ("/accounts/invitations/", {"role": "admin", "language": "en"}),
]


@pytest.fixture
def targets(db):
    agent = AgentFactory(username="target")
    team = TeamFactory()
    team.members.add(agent)
    return {"agent": agent.pk, "team": team.pk}


def test_an_agent_finds_no_admin_page(client, agent, targets):
    client.force_login(agent)
    for path in READ_PAGES + ADMIN_PAGES:
        assert client.get(path.format(**targets)).status_code == 404, path
    for path, data in CHANGES:
        assert client.post(path.format(**targets), data).status_code == 404, path
    assert not AuditLog.objects.exists()
    assert Agent.objects.get(pk=targets["agent"]).is_active


def test_the_admin_gets_the_forms_the_lead_does_not(admin_client, targets):
    page = admin_client.get("/accounts/agents/{agent}/".format(**targets))
    assert post_forms(page.content) >= {
        "/accounts/agents/{agent}/{part}/".format(part=part, **targets)
        for part in ("role", "teams", "inboxes", "active")
    }


def test_a_team_lead_reads_agents_and_teams_but_changes_nothing(client, lead, targets):
    client.force_login(lead)
    for path in READ_PAGES:
        response = client.get(path.format(**targets))
        assert response.status_code == 200, path
        assert post_forms(response.content) <= {"/accounts/logout/"}, path
    for path in ADMIN_PAGES:
        assert client.get(path.format(**targets)).status_code == 404, path
    for path, data in CHANGES:
        assert client.post(path.format(**targets), data).status_code == 404, path
    assert not AuditLog.objects.exists()


def test_signed_out_visitors_are_sent_to_sign_in(client, targets):
    for path in READ_PAGES + ADMIN_PAGES + ["/accounts/preferences/", "/accounts/password/"]:
        response = client.get(path.format(**targets))
        assert response.status_code == 302, path
        assert response["Location"].startswith("/accounts/login/?next="), path


def test_an_unknown_agent_or_team_is_404_for_an_admin(admin_client):
    assert admin_client.get("/accounts/agents/999999/").status_code == 404
    assert admin_client.post("/accounts/agents/999999/role/", {"role": "agent"}).status_code == 404
    assert admin_client.get("/accounts/teams/999999/").status_code == 404


def test_the_back_office_cannot_change_access_around_the_audit(client):
    root = AgentFactory(role=Role.ADMIN, is_staff=True, is_superuser=True)
    wei = AgentFactory(username="wei")
    client.force_login(root)
    page = client.get(f"/admin/accounts/agent/{wei.pk}/change/")
    assert page.status_code == 200
    assert b'name="role"' not in page.content and b'name="is_active"' not in page.content
    assert client.get("/admin/accounts/agent/add/").status_code == 403
