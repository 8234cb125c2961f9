"""Writes to agents, teams and API tokens."""

from __future__ import annotations

import functools
import secrets
import time
import zoneinfo
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext

from kefu.accounts.models import Agent, ApiToken, AuditLog, Invitation, Role, Team, hash_token
from kefu.conversations.models import Inbox, InboxMembership
from kefu.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from kefu.core.events import emit

TOKEN_PREFIX = "kefu_"  # noqa: S105 (a public marker, not a secret)
# last_used_at is written at most this often per token, so reads do not become writes.
LAST_USED_RESOLUTION = timedelta(minutes=5)


def audit(*, actor: Agent | None, action: str, obj: models.Model, **data: object) -> None:
    AuditLog.objects.create(
        actor=actor,
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        data=data,
    )


@transaction.atomic
def create_agent(
    *,
    username: str,
    password: str | None,
    role: str = Role.AGENT,
    email: str = "",
    display_name: str = "",
    language: str = "en",
    actor: Agent | None = None,
) -> Agent:
    if role not in Role.values:
        raise InvalidInput(f"unknown role {role!r}", field="role")
    if Agent.objects.filter(username=username).exists():
        raise InvalidInput(f"user {username!r} already exists", field="username")
    agent = Agent(
        username=username,
        email=email,
        role=role,
        display_name=display_name,
        language=language,
        is_staff=role == Role.ADMIN,
    )
    if password:
        agent.set_password(password)
    else:
        agent.set_unusable_password()
    agent.save()
    audit(actor=actor, action="agent.created", obj=agent, role=role)
    return agent


@transaction.atomic
def create_team(*, name: str, members: list[Agent], actor: Agent | None = None) -> Team:
    team, _ = Team.objects.get_or_create(name=name)
    team.members.add(*members)
    audit(actor=actor, action="team.created", obj=team, members=[m.pk for m in members])
    return team


@transaction.atomic
def create_token(*, user: Agent, name: str, actor: Agent | None = None) -> tuple[ApiToken, str]:
    """Create an API token for ``user``; returns the row and the secret (shown only once)."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name[:100] or "token", prefix=raw[:12], key_hash=hash_token(raw)
    )
    audit(actor=actor, action="token.created", obj=token, user=user.pk)
    return token, raw


@transaction.atomic
def revoke_token(*, token: ApiToken, actor: Agent | None) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    _recent_tokens.pop(token.key_hash, None)
    audit(actor=actor, action="token.revoked", obj=token)


# key_hash -> (expires at, token id, last used, the user's column values). A short-lived,
# per-process memo that saves the token query on every API call. Revoking clears it in the
# revoking process; other processes notice within TOKEN_MEMO_SECONDS (docs/decisions.md).
TOKEN_MEMO_SECONDS = 10.0
_TOKEN_MEMO_MAX = 10_000
_recent_tokens: dict[str, tuple[float, int, object, tuple]] = {}
_AGENT_FIELDS = [f.attname for f in Agent._meta.concrete_fields]


def authenticate_token(raw: str) -> Agent | None:
    """The active user owning ``raw``, or None: at most one indexed query per call."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    key_hash = hash_token(raw)
    memo = _recent_tokens.get(key_hash)
    if memo is not None and memo[0] > time.monotonic():
        # A fresh instance per request: callers cache per-request state on the agent.
        return Agent.from_db("default", _AGENT_FIELDS, memo[3])
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=key_hash, revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        _recent_tokens.pop(key_hash, None)
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    if len(_recent_tokens) >= _TOKEN_MEMO_MAX:
        _recent_tokens.clear()
    values = tuple(getattr(token.user, name) for name in _AGENT_FIELDS)
    _recent_tokens[key_hash] = (time.monotonic() + TOKEN_MEMO_SECONDS, token.pk, now, values)
    return token.user


def forget_user_tokens(user: Agent) -> None:
    """Drop this process's memo of ``user``'s tokens; call after deactivating or changing roles."""
    position = _AGENT_FIELDS.index("id")
    for key, memo in list(_recent_tokens.items()):
        if memo[3][position] == user.pk:
            _recent_tokens.pop(key, None)


# --- Workspace administration: invitations, roles, teams, inboxes, deactivation ---------------
#
# Admins (role admin, or superusers) make these changes; each is audited and, when it changes
# what the agent may see, emits "agent.access_changed" so live connections can re-check access.

INVITATION_LIFETIME = timedelta(days=3)
_INVITATION_SALT = "kefu.accounts.invitation"


def is_admin(agent: Agent | None) -> bool:
    return bool(agent and agent.is_active and (agent.is_superuser or agent.role == Role.ADMIN))


def _require_admin(actor: Agent | None) -> None:
    if not is_admin(actor):
        raise Forbidden(gettext("Only an admin can do this."))


def _validated_role(role: str) -> str:
    if role not in Role.values:
        raise InvalidInput(gettext("Unknown role."), field="role")
    return role


def _validated_language(language: str) -> str:
    if language not in {code for code, _ in settings.LANGUAGES}:
        raise InvalidInput(gettext("Unknown language."), field="language")
    return language


def _validated_password(password: str, user: Agent | None = None) -> str:
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), field="password") from None
    return password


def _validated_username(username: str) -> str:
    username = username.strip()
    try:
        Agent.username_validator(username)
    except ValidationError:
        username = ""
    if not username or len(username) > 150:
        raise InvalidInput(gettext("Choose a username of letters and digits."), field="username")
    return username


def _invitation_link_token(raw: str) -> str:
    # Signed with SECRET_KEY: a forged or altered link is refused before any query.
    return signing.Signer(salt=_INVITATION_SALT).sign(raw)


@transaction.atomic
def invite_agent(
    *,
    actor: Agent,
    email: str = "",
    display_name: str = "",
    role: str = Role.AGENT,
    language: str = "en",
    teams: Iterable[Team] = (),
    inboxes: Iterable[Inbox] = (),
    lifetime: timedelta = INVITATION_LIFETIME,
) -> tuple[Invitation, str]:
    """Create an invitation; returns it and the token for its link (shown once, stored hashed).

    Raises Forbidden unless ``actor`` is an admin, InvalidInput for an unknown role or language.
    """
    _require_admin(actor)
    raw = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        email=email,
        display_name=display_name,
        role=_validated_role(role),
        language=_validated_language(language),
        token_hash=hash_token(raw),
        invited_by=actor,
        expires_at=timezone.now() + lifetime,
    )
    invitation.teams.set(list(teams))
    invitation.inboxes.set(list(inboxes))
    audit(actor=actor, action="invitation.created", obj=invitation, email=email, role=role)
    return invitation, _invitation_link_token(raw)


def find_invitation(token: str, *, lock: bool = False) -> Invitation:
    """The pending invitation behind a link token (its row locked for update with ``lock``).

    Raises NotFound for a forged, altered or unknown token, Conflict for one already used,
    revoked or expired (each with a message for the person holding the link).
    """
    try:
        raw = signing.Signer(salt=_INVITATION_SALT).unsign(token)
    except signing.BadSignature:
        raise NotFound(gettext("This invitation link is not valid.")) from None
    rows = Invitation.objects.select_for_update() if lock else Invitation.objects
    invitation = rows.filter(token_hash=hash_token(raw)).first()
    if invitation is None:
        raise NotFound(gettext("This invitation link is not valid."))
    if invitation.accepted_at is not None:
        raise Conflict(gettext("This invitation has already been used."))
    if invitation.revoked_at is not None:
        raise Conflict(gettext("This invitation was withdrawn."))
    if invitation.expires_at <= timezone.now():
        raise Conflict(gettext("This invitation has expired. Ask an admin for a new one."))
    return invitation


@transaction.atomic
def accept_invitation(*, token: str, username: str, password: str, display_name: str = "") -> Agent:
    """Create the invited agent (role, teams and inboxes from the invitation); single use.

    The invitation row is locked, so of two concurrent acceptances one creates the agent and
    the other gets Conflict. Raises what :func:`find_invitation` raises, InvalidInput for a
    taken username or a weak password.
    """
    invitation = find_invitation(token, lock=True)
    username = _validated_username(username)
    if Agent.objects.filter(username__iexact=username).exists():
        raise InvalidInput(gettext("This username is taken."), field="username")
    _validated_password(password, Agent(username=username, email=invitation.email))
    agent = create_agent(
        username=username,
        password=password,
        role=invitation.role,
        email=invitation.email,
        display_name=display_name.strip() or invitation.display_name,
        language=invitation.language,
        actor=invitation.invited_by,
    )
    agent.teams.set(list(invitation.teams.all()))
    InboxMembership.objects.bulk_create(
        [InboxMembership(inbox=inbox, agent=agent) for inbox in invitation.inboxes.all()]
    )
    Invitation.objects.filter(pk=invitation.pk).update(
        accepted_at=timezone.now(), accepted_by=agent
    )
    audit(actor=agent, action="invitation.accepted", obj=invitation, agent=agent.pk)
    return agent


@transaction.atomic
def revoke_invitation(*, invitation: Invitation, actor: Agent) -> None:
    _require_admin(actor)
    updated = Invitation.objects.filter(
        pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    if updated:
        audit(actor=actor, action="invitation.revoked", obj=invitation)


def _refuse_losing_last_admin(agent: Agent) -> None:
    """Raise InvalidInput when ``agent`` is the only active admin left."""
    others = (
        Agent.objects.filter(is_active=True)
        .filter(models.Q(role=Role.ADMIN) | models.Q(is_superuser=True))
        .exclude(pk=agent.pk)
    )
    if is_admin(agent) and not others.exists():
        raise InvalidInput(gettext("kefu needs at least one active admin."), field="role")


def _access_changed(agent: Agent) -> None:
    forget_user_tokens(agent)
    emit("agent.access_changed", agent_id=agent.pk)


@transaction.atomic
def set_role(*, agent: Agent, role: str, actor: Agent) -> Agent:
    """Give ``agent`` a role (admins are also staff, for the back office)."""
    _require_admin(actor)
    _validated_role(role)
    if role == agent.role:
        return agent
    if role != Role.ADMIN:
        _refuse_losing_last_admin(agent)
    previous = agent.role
    agent.role = role
    agent.is_staff = role == Role.ADMIN or agent.is_superuser
    agent.save(update_fields=["role", "is_staff"])
    audit(actor=actor, action="agent.role_changed", obj=agent, old=previous, new=role)
    _access_changed(agent)
    return agent


@transaction.atomic
def set_teams(*, agent: Agent, teams: Iterable[Team], actor: Agent) -> None:
    """Make ``agent`` a member of exactly ``teams`` (and through them, of the teams' inboxes)."""
    _require_admin(actor)
    wanted = {team.pk for team in teams}
    current = set(agent.teams.values_list("pk", flat=True))
    if wanted == current:
        return
    agent.teams.set(list(wanted))
    audit(
        actor=actor,
        action="agent.teams_changed",
        obj=agent,
        added=sorted(wanted - current),
        removed=sorted(current - wanted),
    )
    _access_changed(agent)


@transaction.atomic
def set_inboxes(*, agent: Agent, inboxes: Iterable[Inbox], actor: Agent) -> None:
    """Make ``agent`` a direct member of exactly ``inboxes`` (team inboxes come on top)."""
    _require_admin(actor)
    wanted = {inbox.pk for inbox in inboxes}
    memberships = InboxMembership.objects.filter(agent=agent)
    current = set(memberships.values_list("inbox_id", flat=True))
    if wanted == current:
        return
    memberships.filter(inbox_id__in=current - wanted).delete()
    InboxMembership.objects.bulk_create(
        [InboxMembership(inbox_id=pk, agent=agent) for pk in sorted(wanted - current)]
    )
    audit(
        actor=actor,
        action="agent.inboxes_changed",
        obj=agent,
        added=sorted(wanted - current),
        removed=sorted(current - wanted),
    )
    _access_changed(agent)


@transaction.atomic
def set_team_inboxes(*, team: Team, inboxes: Iterable[Inbox], actor: Agent) -> None:
    """Give every member of ``team`` exactly ``inboxes`` through the team."""
    _require_admin(actor)
    wanted = {inbox.pk for inbox in inboxes}
    current = set(team.inboxes.values_list("pk", flat=True))
    if wanted == current:
        return
    team.inboxes.set(list(wanted))
    audit(
        actor=actor,
        action="team.inboxes_changed",
        obj=team,
        added=sorted(wanted - current),
        removed=sorted(current - wanted),
    )
    for member in team.members.all():
        _access_changed(member)


@transaction.atomic
def set_active(*, agent: Agent, active: bool, actor: Agent) -> Agent:
    """Deactivate (no sign-in, sessions and API tokens stop working at once) or reactivate.

    Nobody deactivates themselves, and the last active admin stays.
    """
    _require_admin(actor)
    if agent.is_active == active:
        return agent
    if not active:
        if agent.pk == actor.pk:
            raise InvalidInput(gettext("You cannot deactivate yourself."), field="active")
        _refuse_losing_last_admin(agent)
    agent.is_active = active
    agent.save(update_fields=["is_active"])
    audit(actor=actor, action="agent.activated" if active else "agent.deactivated", obj=agent)
    _access_changed(agent)
    return agent


@transaction.atomic
def set_preferences(
    *, agent: Agent, language: str, timezone_name: str, display_name: str | None = None
) -> Agent:
    """The agent's own interface language and time zone (and display name)."""
    _validated_language(language)
    if timezone_name not in available_timezones():
        raise InvalidInput(gettext("Unknown time zone."), field="timezone")
    changes = {"language": language, "timezone": timezone_name}
    if display_name is not None:
        changes["display_name"] = display_name.strip()[:150]
    changed = {name: value for name, value in changes.items() if getattr(agent, name) != value}
    if changed:
        for name, value in changed.items():
            setattr(agent, name, value)
        agent.save(update_fields=list(changed))
        audit(actor=agent, action="agent.preferences_changed", obj=agent, **changed)
    return agent


@transaction.atomic
def change_password(*, agent: Agent, password: str) -> None:
    """Set ``agent``'s password (validated); their other sessions end (Django's session hash)."""
    agent.set_password(_validated_password(password, agent))
    agent.save(update_fields=["password"])
    audit(actor=agent, action="agent.password_changed", obj=agent)


@functools.cache
def available_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())
