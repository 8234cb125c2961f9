"""The widget's words, in the visitor's language, from kefu's own translation catalogs.

The widget ships no strings: the server sends them in its first frame, so the widget speaks
every language the workspace does (English, Simplified Chinese, Arabic right to left) and a
translation fixed once is fixed everywhere.
"""

from __future__ import annotations

from django.utils import translation
from django.utils.translation import gettext as _


def widget_language(requested: object) -> str:
    """The supported language closest to the browser's (``zh-CN`` -> ``zh-hans``), else en."""
    if isinstance(requested, str) and requested.strip():
        code = requested.strip().lower()[:16]
        if code.startswith("zh"):
            return "zh-hans"  # the one Chinese catalog kefu has
        try:
            return translation.get_supported_language_variant(code)
        except LookupError:
            pass
    return "en"


def widget_texts(language: str) -> dict[str, str]:
    with translation.override(language):
        return {
            "title": _("Chat with us"),
            "open": _("Open chat"),
            "close": _("Close chat"),
            "placeholder": _("Write a message…"),
            "send": _("Send"),
            "attach": _("Attach a file"),
            "name": _("Your name"),
            "email": _("Email (optional)"),
            "email_required": _("Your email, so we can answer"),
            "start": _("Start chatting"),
            "typing": _("{name} is typing…"),
            "agent": _("Support"),
            "you": _("You"),
            "seen": _("Seen"),
            "sending": _("Sending…"),
            "failed": _("Not sent. Tap to retry."),
            "offline": _("We are away right now. Leave a message and we will answer by email."),
            "online": _("We usually answer within minutes."),
            "too_large": _("This file is too large."),
            "rate_limited": _("You are sending messages too fast. Please wait a moment."),
            "reconnecting": _("Reconnecting…"),
            "refused": _("not accepted"),
        }


def direction(language: str) -> str:
    return "rtl" if translation.get_language_info(language)["bidi"] else "ltr"
