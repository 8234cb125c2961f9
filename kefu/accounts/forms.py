"""Forms of the account pages. They validate input; the changes go through accounts.actions."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpRequest
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _

from kefu.accounts import ratelimit
from kefu.accounts.actions import available_timezones
from kefu.accounts.models import Agent, Role, Team
from kefu.conversations.models import Inbox


class LoginForm(AuthenticationForm):
    """Django's sign-in form behind the rate limit: a blocked address or username is refused
    before any password is checked, and every wrong password counts against both."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "rate_limited": _("Too many failed sign-in attempts. Wait a few minutes, then try again."),
    }

    def clean(self) -> dict[str, Any]:
        assert self.request is not None, "LoginView passes the request"
        limit = ratelimit.login_limit()
        subjects = ratelimit.login_subjects(self.request, self.cleaned_data.get("username") or "")
        if ratelimit.is_blocked(limit, subjects):
            raise ValidationError(self.error_messages["rate_limited"], code="rate_limited")
        try:
            return super().clean()
        except ValidationError as error:
            if error.code == "invalid_login":
                ratelimit.record_failure(limit, subjects)
            raise

    @property
    def rate_limited(self) -> bool:
        return self.has_error(NON_FIELD_ERRORS, "rate_limited")


class PasswordChangeForm(auth_forms.PasswordChangeForm):
    """Django's form; a wrong current password counts against the sign-in limit of the
    username, so a borrowed session cannot be used to guess the password at leisure."""

    error_messages = {**auth_forms.PasswordChangeForm.error_messages, **LoginForm.error_messages}

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        agent: Agent = request.user  # type: ignore[assignment]
        super().__init__(agent, *args, **kwargs)
        self.subjects = [ratelimit.login_subjects(request, agent.get_username())[1]]

    def clean_old_password(self) -> str:
        limit = ratelimit.login_limit()
        if ratelimit.is_blocked(limit, self.subjects):
            raise ValidationError(self.error_messages["rate_limited"], code="rate_limited")
        try:
            return super().clean_old_password()
        except ValidationError:
            ratelimit.record_failure(limit, self.subjects)
            raise

    @property
    def rate_limited(self) -> bool:
        return self.has_error("old_password", "rate_limited")


def language_choices() -> list[tuple[str, str]]:
    return [(code, name) for code, name in settings.LANGUAGES]


def timezone_choices() -> list[tuple[str, str]]:
    return [(name, name.replace("_", " ")) for name in sorted(available_timezones())]


class PreferencesForm(forms.Form):
    display_name = forms.CharField(label=_("Display name"), max_length=150, required=False)
    language = forms.ChoiceField(label=_("Interface language"), choices=language_choices)
    timezone = forms.ChoiceField(label=_("Time zone"), choices=timezone_choices)


class InviteForm(forms.Form):
    email = forms.EmailField(label=_("Email"), required=False)
    display_name = forms.CharField(label=_("Name"), max_length=150, required=False)
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.AGENT)
    language = forms.ChoiceField(label=_("Interface language"), choices=language_choices)
    teams = forms.ModelMultipleChoiceField(
        label=_("Teams"),
        queryset=Team.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    inboxes = forms.ModelMultipleChoiceField(
        label=_("Inboxes"),
        queryset=Inbox.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )


class AcceptInvitationForm(forms.Form):
    username = forms.CharField(
        label=_("Username"),
        max_length=150,
        validators=[Agent.username_validator],
        help_text=_("Letters, digits and @/./+/-/_ only."),
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none"}),
    )
    display_name = forms.CharField(label=_("Your name"), max_length=150, required=False)
    password1 = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        # Lazy: rendered in the visitor's language, not the one active at import.
        help_text=lazy(password_validation.password_validators_help_text_html, str)(),
    )
    password2 = forms.CharField(
        label=_("Password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", _("The two passwords differ."))
        return data


class RoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)


class TeamsForm(forms.Form):
    teams = forms.ModelMultipleChoiceField(
        label=_("Teams"),
        queryset=Team.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )


class InboxesForm(forms.Form):
    inboxes = forms.ModelMultipleChoiceField(
        label=_("Inboxes"),
        queryset=Inbox.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )


class TeamForm(forms.Form):
    name = forms.CharField(label=_("Team name"), max_length=100)
