"""Inviting agents: a single-use, expiring, signed link whose secret is stored only hashed."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from kefu.accounts import actions
from kefu.accounts.models import Agent, AuditLog, Invitation, Role, hash_token
from kefu.conversations.selectors import inboxes_visible_to
from tests.factories import InboxFactory, TeamFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a long new passphrase"


def invite_through_the_page(admin_client, **fields) -> str:
    data = {"email": "mei@example.com", "display_name": "Mei", "role": Role.AGENT}
    data |= {"language": "zh-hans"} | fields
    response = admin_client.post("/accounts/invitations/", data)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    match = re.search(rb'value="(http://testserver/accounts/invitation/[^"]+/)"', response.content)
    assert match, "the page shows the link once"
    return match.group(1).decode().removeprefix("http://testserver")


def accept(client, path: str, username: str = "mei"):
    return client.post(
        path,
        {"username": username, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )


def test_an_invited_person_joins_with_the_role_teams_and_inboxes_chosen(admin_client):
    team, inbox = TeamFactory(name="Returns"), InboxFactory(name="Shop mail")
    team_inbox = InboxFactory(name="Chat")
    team.inboxes.add(team_inbox)
    path = invite_through_the_page(
        admin_client, role=Role.LEAD, teams=[team.pk], inboxes=[inbox.pk]
    )
    client = Client()  # the invitee, in another browser

    form = client.get(path)
    assert form.status_code == 200
    assert b'name="password1"' in form.content
    response = accept(client, path)

    assert response.status_code == 302
    mei = Agent.objects.get(username="mei")
    assert client.session["_auth_user_id"] == str(mei.pk)  # signed in at once
    assert (mei.role, mei.email, mei.display_name, mei.language) == (
        Role.LEAD,
        "mei@example.com",
        "Mei",
        "zh-hans",
    )
    assert mei.check_password(NEW_PASSWORD)
    assert list(mei.teams.all()) == [team]
    assert set(inboxes_visible_to(mei)) == {inbox, team_inbox}
    invitation = Invitation.objects.get()
    assert invitation.accepted_by == mei and invitation.accepted_at is not None
    assert list(
        AuditLog.objects.filter(object_type="accounts.invitation").values_list("action", flat=True)
    ) == ["invitation.created", "invitation.accepted"]


def test_only_the_hash_of_the_secret_is_stored(admin):
    invitation, token = actions.invite_agent(actor=admin)
    raw = token.rsplit(":", 1)[0]  # the link token is the secret plus its signature
    assert invitation.token_hash == hash_token(raw)
    assert raw not in str(list(Invitation.objects.values()))


def test_a_used_link_is_refused(admin, client):
    _, token = actions.invite_agent(actor=admin)
    path = f"/accounts/invitation/{token}/"
    assert accept(client, path).status_code == 302
    client.logout()

    again = accept(client, path, username="someone_else")
    assert again.status_code == 410
    assert b"already been used" in again.content
    assert client.get(path).status_code == 410
    assert not Agent.objects.filter(username="someone_else").exists()


def test_an_expired_link_is_refused(admin, client):
    _, token = actions.invite_agent(actor=admin)
    with time_machine.travel(timezone.now() + actions.INVITATION_LIFETIME + timedelta(seconds=1)):
        response = accept(client, f"/accounts/invitation/{token}/")
    assert response.status_code == 410
    assert b"expired" in response.content
    assert not Agent.objects.filter(username="mei").exists()


def test_a_link_still_works_just_before_it_expires(admin, client):
    _, token = actions.invite_agent(actor=admin)
    with time_machine.travel(timezone.now() + actions.INVITATION_LIFETIME - timedelta(minutes=1)):
        assert accept(client, f"/accounts/invitation/{token}/").status_code == 302


def test_a_withdrawn_link_is_refused(admin_client, admin):
    invitation, token = actions.invite_agent(actor=admin)
    response = admin_client.post(f"/accounts/invitations/{invitation.pk}/revoke/")
    assert response.status_code == 302
    assert AuditLog.objects.filter(action="invitation.revoked").count() == 1
    assert accept(Client(), f"/accounts/invitation/{token}/").status_code == 410
    assert not Agent.objects.filter(username="mei").exists()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # signature altered
        lambda token: "x" + token,  # secret altered, signature no longer matches
        lambda token: "nothing-here",
    ],
)
def test_a_forged_or_altered_link_is_not_found(admin, client, mangle):
    _, token = actions.invite_agent(actor=admin)
    assert client.get(f"/accounts/invitation/{mangle(token)}/").status_code == 404
    assert accept(client, f"/accounts/invitation/{mangle(token)}/").status_code == 404


def test_a_weak_password_or_a_taken_username_keeps_the_link_usable(admin, client):
    _, token = actions.invite_agent(actor=admin)
    path = f"/accounts/invitation/{token}/"
    weak = client.post(path, {"username": "mei", "password1": "12345678", "password2": "12345678"})
    taken = accept(client, path, username=admin.username.upper())
    mismatch = client.post(
        path, {"username": "mei", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "!"}
    )
    assert weak.status_code == taken.status_code == mismatch.status_code == 200
    assert b"This username is taken" in taken.content
    assert Invitation.objects.get().accepted_at is None
    assert accept(client, path).status_code == 302


def test_only_admins_invite(lead, admin):
    with pytest.raises(actions.Forbidden):
        actions.invite_agent(actor=lead)
