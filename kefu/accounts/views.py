"""Account pages: sign-in and out, password, preferences, invitations, agents, teams, audit log.

Admins change things; team leads see the agent and team pages read-only; anyone else gets 404
on those pages (they do not exist for them). Every change goes through kefu.accounts.actions.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from kefu.accounts import actions
from kefu.accounts.forms import (
    AcceptInvitationForm,
    InboxesForm,
    InviteForm,
    LoginForm,
    PasswordChangeForm,
    PreferencesForm,
    RoleForm,
    TeamForm,
    TeamsForm,
)
from kefu.accounts.middleware import supported_language
from kefu.accounts.models import Agent, AuditLog, Invitation, Role, Team
from kefu.conversations.models import Inbox
from kefu.core.errors import Conflict, Forbidden, InvalidInput, NotFound

View = Callable[..., HttpResponse]

AUDIT_PAGE_SIZE = 50


# --- Access ------------------------------------------------------------------------------------


def _is_lead_or_admin(agent: Agent) -> bool:
    return actions.is_admin(agent) or (agent.is_active and agent.role == Role.LEAD)


def staff_page(*, write: bool) -> Callable[[View], View]:
    """Admins only when ``write``; admins and team leads otherwise. Others get 404."""

    def decorate(view: View) -> View:
        @wraps(view)
        @login_required
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            allowed = actions.is_admin if write else _is_lead_or_admin
            if not allowed(request.user):  # type: ignore[arg-type]
                raise Http404
            try:
                return view(request, *args, **kwargs)
            except NotFound:
                raise Http404 from None
            except Forbidden:
                raise PermissionDenied from None

        return guarded

    return decorate


def _language_cookie(response: HttpResponse, language: str) -> HttpResponse:
    """Remember the agent's language in the browser, so the sign-in page speaks it too."""
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=365 * 24 * 3600,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
    )
    return response


# --- Sign-in, password, preferences ------------------------------------------------------------


class SignInView(LoginView):
    """Django's LoginView with the rate-limited form; a refusal by the limit answers 429."""

    form_class = LoginForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form: LoginForm) -> HttpResponse:  # type: ignore[override]
        response = super().form_valid(form)
        return _language_cookie(response, supported_language(form.get_user().language))

    def form_invalid(self, form: LoginForm) -> HttpResponse:  # type: ignore[override]
        response = super().form_invalid(form)
        if form.rate_limited:
            response.status_code = 429
        return response


@sensitive_post_parameters()
@never_cache
@login_required
def password_change(request: HttpRequest) -> HttpResponse:
    agent: Agent = request.user  # type: ignore[assignment]
    form = PasswordChangeForm(request, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            actions.change_password(agent=agent, password=form.cleaned_data["new_password1"])
        except InvalidInput as exc:
            form.add_error("new_password1", exc.message)
        else:
            update_session_auth_hash(request, agent)  # this session stays; the others end
            messages.success(request, _("Your password was changed."))
            return redirect("accounts:preferences")
    status = 429 if form.is_bound and form.rate_limited else 200
    return render(request, "accounts/password_change.html", {"form": form}, status=status)


@login_required
def preferences(request: HttpRequest) -> HttpResponse:
    agent: Agent = request.user  # type: ignore[assignment]
    initial = {
        "display_name": agent.display_name,
        "language": supported_language(agent.language),
        "timezone": agent.timezone,
    }
    form = PreferencesForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            actions.set_preferences(
                agent=agent,
                language=data["language"],
                timezone_name=data["timezone"],
                display_name=data["display_name"],
            )
        except InvalidInput as exc:
            form.add_error(exc.field, exc.message)
        else:
            # Confirmed in the agent's new language (this request runs in the old one).
            with translation.override(data["language"]):
                messages.success(request, _("Preferences saved."))
            return _language_cookie(redirect("accounts:preferences"), data["language"])
    return render(request, "accounts/preferences.html", {"form": form})


# --- Invitations -------------------------------------------------------------------------------


@staff_page(write=True)
def invitations(request: HttpRequest) -> HttpResponse:
    """Pending invitations and the form for a new one; a created link is shown once, here."""
    form = InviteForm(request.POST or None)
    link = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        _, token = actions.invite_agent(
            actor=request.user,  # type: ignore[arg-type]
            email=data["email"],
            display_name=data["display_name"],
            role=data["role"],
            language=data["language"],
            teams=data["teams"],
            inboxes=data["inboxes"],
        )
        link = request.build_absolute_uri(reverse("accounts:accept_invitation", args=[token]))
        form = InviteForm()
    pending = (
        Invitation.objects.filter(accepted_at__isnull=True, revoked_at__isnull=True)
        .select_related("invited_by")
        .order_by("-created_at")
    )
    context = {"form": form, "link": link, "pending": pending}
    response = render(request, "accounts/invitations.html", context)
    if link:
        response["Cache-Control"] = "no-store"
    return response


@require_POST
@staff_page(write=True)
def revoke_invitation(request: HttpRequest, pk: int) -> HttpResponse:
    invitation = Invitation.objects.filter(pk=pk).first()
    if invitation is None:
        raise Http404
    actions.revoke_invitation(invitation=invitation, actor=request.user)  # type: ignore[arg-type]
    messages.success(request, _("The invitation was withdrawn."))
    return redirect("accounts:invitations")


@sensitive_post_parameters("password1", "password2")
@never_cache
def accept_invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The invitee's page: choose a username and a password, then be signed in."""
    try:
        invitation = actions.find_invitation(token)
    except (NotFound, Conflict) as exc:
        status = 404 if isinstance(exc, NotFound) else 410
        return render(request, "accounts/invitation_problem.html", {"problem": exc}, status=status)
    form = AcceptInvitationForm(
        request.POST or None, initial={"display_name": invitation.display_name}
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            agent = actions.accept_invitation(
                token=token,
                username=data["username"],
                password=data["password1"],
                display_name=data["display_name"],
            )
        except InvalidInput as exc:
            form.add_error("password1" if exc.field == "password" else exc.field, exc.message)
        except (NotFound, Conflict) as exc:
            context = {"problem": exc}
            return render(request, "accounts/invitation_problem.html", context, status=410)
        else:
            login(request, agent, backend="django.contrib.auth.backends.ModelBackend")
            return _language_cookie(redirect(settings.LOGIN_REDIRECT_URL), agent.language)
    return render(
        request, "accounts/accept_invitation.html", {"form": form, "invitation": invitation}
    )


# --- Agents ------------------------------------------------------------------------------------


@staff_page(write=False)
def agents(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    rows = Agent.objects.prefetch_related(
        Prefetch("teams", queryset=Team.objects.order_by("name"))
    ).order_by("-is_active", "username")
    if query:
        rows = rows.filter(
            Q(username__icontains=query)
            | Q(display_name__icontains=query)
            | Q(email__icontains=query)
        )
    context = {"agents": rows, "q": query, "can_edit": actions.is_admin(request.user)}  # type: ignore[arg-type]
    return render(request, "accounts/agents.html", context)


def _agent_or_404(pk: int) -> Agent:
    agent = Agent.objects.filter(pk=pk).first()
    if agent is None:
        raise Http404
    return agent


@staff_page(write=False)
def agent_detail(request: HttpRequest, pk: int) -> HttpResponse:
    agent = _agent_or_404(pk)
    return render(request, "accounts/agent_detail.html", _agent_context(request, agent))


def _agent_context(request: HttpRequest, agent: Agent, **forms: Any) -> dict[str, Any]:
    direct = list(agent.inboxes.order_by("name"))
    through_teams = (
        Inbox.objects.filter(teams__members=agent).exclude(pk__in=[i.pk for i in direct])
    ).distinct()
    teams = list(agent.teams.order_by("name"))
    return {
        "agent": agent,
        "teams": teams,
        "direct_inboxes": direct,
        "team_inboxes": through_teams.order_by("name"),
        "can_edit": actions.is_admin(request.user),  # type: ignore[arg-type]
        "role_form": forms.get("role_form") or RoleForm(initial={"role": agent.role}),
        "teams_form": forms.get("teams_form") or TeamsForm(initial={"teams": teams}),
        "inboxes_form": forms.get("inboxes_form") or InboxesForm(initial={"inboxes": direct}),
        "history": AuditLog.objects.filter(
            object_type=agent._meta.label_lower, object_id=str(agent.pk)
        )
        .select_related("actor")
        .order_by("-id")[:20],
    }


def _agent_change(
    request: HttpRequest,
    pk: int,
    form_class: type,
    form_name: str,
    apply: Callable[[Agent, dict[str, Any]], object],
) -> HttpResponse:
    """Validate ``form_class`` from the POST, apply it to the agent, back to the agent's page.

    An InvalidInput from the action shows on the form (422), like a form error.
    """
    agent = _agent_or_404(pk)
    form = form_class(request.POST)
    if form.is_valid():
        try:
            apply(agent, form.cleaned_data)
        except InvalidInput as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Saved."))
            return redirect("accounts:agent", pk=agent.pk)
    context = _agent_context(request, agent, **{form_name: form})
    return render(request, "accounts/agent_detail.html", context, status=422)


@require_POST
@staff_page(write=True)
def agent_role(request: HttpRequest, pk: int) -> HttpResponse:
    def apply(agent: Agent, data: dict[str, Any]) -> object:
        return actions.set_role(agent=agent, role=data["role"], actor=request.user)  # type: ignore[arg-type]

    return _agent_change(request, pk, RoleForm, "role_form", apply)


@require_POST
@staff_page(write=True)
def agent_teams(request: HttpRequest, pk: int) -> HttpResponse:
    def apply(agent: Agent, data: dict[str, Any]) -> object:
        return actions.set_teams(agent=agent, teams=data["teams"], actor=request.user)  # type: ignore[arg-type]

    return _agent_change(request, pk, TeamsForm, "teams_form", apply)


@require_POST
@staff_page(write=True)
def agent_inboxes(request: HttpRequest, pk: int) -> HttpResponse:
    def apply(agent: Agent, data: dict[str, Any]) -> object:
        return actions.set_inboxes(agent=agent, inboxes=data["inboxes"], actor=request.user)  # type: ignore[arg-type]

    return _agent_change(request, pk, InboxesForm, "inboxes_form", apply)


@require_POST
@staff_page(write=True)
def agent_active(request: HttpRequest, pk: int) -> HttpResponse:
    agent = _agent_or_404(pk)
    active = request.POST.get("active") == "1"
    try:
        actions.set_active(agent=agent, active=active, actor=request.user)  # type: ignore[arg-type]
    except InvalidInput as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("The agent can sign in again.") if active else _("The agent was deactivated."),
        )
    return redirect("accounts:agent", pk=agent.pk)


# --- Teams -------------------------------------------------------------------------------------


@staff_page(write=False)
def teams(request: HttpRequest) -> HttpResponse:
    form = TeamForm(request.POST or None)
    if request.method == "POST":
        if not actions.is_admin(request.user):  # type: ignore[arg-type]
            raise Http404
        if form.is_valid():
            team = actions.create_team(
                name=form.cleaned_data["name"].strip(),
                members=[],
                actor=request.user,  # type: ignore[arg-type]
            )
            return redirect("accounts:team", pk=team.pk)
    rows = Team.objects.prefetch_related(
        Prefetch("members", queryset=Agent.objects.order_by("username")),
        Prefetch("inboxes", queryset=Inbox.objects.order_by("name")),
    ).order_by("name")
    context = {"teams": rows, "form": form, "can_edit": actions.is_admin(request.user)}  # type: ignore[arg-type]
    return render(request, "accounts/teams.html", context)


@staff_page(write=False)
def team_detail(request: HttpRequest, pk: int) -> HttpResponse:
    team = Team.objects.filter(pk=pk).first()
    if team is None:
        raise Http404
    inboxes = list(team.inboxes.order_by("name"))
    form = InboxesForm(request.POST or None, initial={"inboxes": inboxes})
    if request.method == "POST":
        if not actions.is_admin(request.user):  # type: ignore[arg-type]
            raise Http404
        if form.is_valid():
            actions.set_team_inboxes(
                team=team,
                inboxes=form.cleaned_data["inboxes"],
                actor=request.user,  # type: ignore[arg-type]
            )
            messages.success(request, _("Saved."))
            return redirect("accounts:team", pk=team.pk)
    context = {
        "team": team,
        "members": team.members.order_by("username"),
        "inboxes": inboxes,
        "form": form,
        "can_edit": actions.is_admin(request.user),  # type: ignore[arg-type]
    }
    return render(request, "accounts/team_detail.html", context)


# --- Audit log ---------------------------------------------------------------------------------


@staff_page(write=True)
def audit_log(request: HttpRequest) -> HttpResponse:
    """Newest first, AUDIT_PAGE_SIZE per page, keyset-paged by id (``?before=<id>``)."""
    rows = AuditLog.objects.select_related("actor").order_by("-id")
    action = request.GET.get("action", "").strip()
    if action:
        rows = rows.filter(action=action)
    before = request.GET.get("before", "")
    if before.isdigit() and len(before) < 19:
        rows = rows.filter(id__lt=int(before))
    page = list(rows[: AUDIT_PAGE_SIZE + 1])
    context = {
        "entries": page[:AUDIT_PAGE_SIZE],
        "next_before": page[AUDIT_PAGE_SIZE - 1].pk if len(page) > AUDIT_PAGE_SIZE else None,
        "action": action,
        "actions": AuditLog.objects.order_by("action").values_list("action", flat=True).distinct(),
    }
    return render(request, "accounts/audit.html", context)
