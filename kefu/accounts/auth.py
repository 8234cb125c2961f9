"""Bearer-token authentication for the REST API (``Authorization: Bearer kefu_...``)."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.translation import gettext
from ninja.security import HttpBearer
from ninja.utils import check_csrf

from kefu.accounts.actions import authenticate_token
from kefu.accounts.models import Agent
from kefu.core.errors import Forbidden


class TokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Agent | None:
        return authenticate_token(token)


class SessionOrTokenAuth(TokenAuth):
    """The browser's session (the workspace calls the API too) or a bearer token."""

    def __call__(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        if request.headers.get("Authorization"):
            return super().__call__(request)
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_active:
            return None
        # A cookie rides along on cross-site requests: unsafe methods need the CSRF token. A
        # signed-in caller is told so (403), rather than asked for a token it does not use (401).
        if request.method not in ("GET", "HEAD", "OPTIONS") and check_csrf(request):
            raise Forbidden(gettext("CSRF check failed: send the X-CSRFToken header with a write"))
        return user
