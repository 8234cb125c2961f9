"""Template context shared by every page: the interface language and its writing direction."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.utils import translation


def interface(request: HttpRequest) -> dict[str, str]:
    """``html_lang``: the active language as a BCP 47 tag ("en", "zh-Hans", "ar");
    ``html_dir``: "rtl" for right-to-left languages (Arabic), "ltr" otherwise.

    base.html uses them as ``<html lang="{{ html_lang }}" dir="{{ html_dir }}">``.
    """
    language = translation.get_language() or settings.LANGUAGE_CODE
    return {
        "html_lang": translation.to_locale(language).replace("_", "-"),
        "html_dir": "rtl" if translation.get_language_bidi() else "ltr",
    }
