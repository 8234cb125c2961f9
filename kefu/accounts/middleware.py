"""The signed-in agent's interface language and time zone, for every request.

``LocaleMiddleware`` (earlier in the chain) picks a language from the URL-less signals it has:
the language cookie, then the browser's Accept-Language. For a signed-in agent, the language
chosen in their preferences wins over both, so the interface follows the person, not the
computer they happen to use. Times render in the agent's time zone (``timezone.activate``).
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Callable
from datetime import tzinfo

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation


def supported_language(code: str) -> str:
    """``code`` when kefu ships it (or a variant of it), else the default language."""
    try:
        return translation.get_supported_language_variant(code or settings.LANGUAGE_CODE)
    except LookupError:
        return settings.LANGUAGE_CODE


@functools.lru_cache(maxsize=512)
def zone(name: str) -> tzinfo:
    """The time zone called ``name``; UTC for a name this system does not know."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


class AgentPreferencesMiddleware:
    """Activates ``request.user.language`` and ``.timezone``; must follow AuthenticationMiddleware.

    Anonymous requests (the sign-in page, token-authenticated API calls) keep what
    LocaleMiddleware chose and the default time zone.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            translation.activate(supported_language(user.language))
            request.LANGUAGE_CODE = translation.get_language()
            timezone.activate(zone(user.timezone))
        try:
            return self.get_response(request)
        finally:
            # The time zone is thread state: never let it leak into the thread's next request.
            # (The language is reset by LocaleMiddleware at the start of every request.)
            timezone.deactivate()
