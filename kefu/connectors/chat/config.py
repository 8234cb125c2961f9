"""A chat inbox's widget settings, kept in ``Inbox.config``.

``widget_key`` is public: it sits in the storefront's ``<script>`` tag and names the inbox. It
grants nothing but the right to open a visitor session; each visitor then holds a signed token
for their own conversations only (see ``visitors``).

- ``allowed_origins``: storefront origins allowed to open the widget (``https://shop.example``);
  empty allows any origin (a widget key is public anyway, the token protects the history);
- ``greeting``: per language, shown before the first message (``{"en": "Hi!", "zh-hans": ...}``);
- ``offline_email_inbox_id``: the email inbox whose SMTP answers visitors who left;
- ``max_attachment_bytes`` and ``new_conversations_per_hour`` (per visitor address).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

from kefu.conversations.models import Inbox, InboxKind

DEFAULT_MAX_ATTACHMENT = 10 * 1024 * 1024
DEFAULT_NEW_CONVERSATIONS_PER_HOUR = 10


@dataclass(frozen=True)
class ChatSettings:
    widget_key: str
    allowed_origins: tuple[str, ...] = ()
    greeting: dict[str, str] = field(default_factory=dict)
    offline_email_inbox_id: int | None = None
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT
    new_conversations_per_hour: int = DEFAULT_NEW_CONVERSATIONS_PER_HOUR

    def allows_origin(self, origin: str) -> bool:
        if not self.allowed_origins:
            return True
        return origin.rstrip("/").lower() in self.allowed_origins

    def greeting_for(self, language: str) -> str:
        language = language.lower()
        return (
            self.greeting.get(language)
            or self.greeting.get(language.split("-")[0])
            or self.greeting.get("en", "")
        )


def settings_of(inbox: Inbox) -> ChatSettings:
    config = inbox.config or {}
    origins = config.get("allowed_origins") or []
    greeting = config.get("greeting") or {}
    offline = config.get("offline_email_inbox_id")
    return ChatSettings(
        widget_key=str(config.get("widget_key") or ""),
        allowed_origins=tuple(str(o).rstrip("/").lower() for o in origins if o),
        greeting={str(k).lower(): str(v) for k, v in greeting.items()}
        if isinstance(greeting, dict)
        else {},
        offline_email_inbox_id=int(offline) if offline else None,
        max_attachment_bytes=int(config.get("max_attachment_bytes") or DEFAULT_MAX_ATTACHMENT),
        new_conversations_per_hour=int(
            config.get("new_conversations_per_hour") or DEFAULT_NEW_CONVERSATIONS_PER_HOUR
        ),
    )


INTEGER_KEYS = ("offline_email_inbox_id", "max_attachment_bytes", "new_conversations_per_hour")


def _greeting(raw: str) -> dict[str, str]:
    """``{"en": "Hi!", "zh-hans": "您好！"}`` as JSON, or plain text for every language."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {"en": raw}
    if not isinstance(parsed, dict):
        raise ValueError("greeting must be text or a JSON object of language: text")
    return {str(k).lower(): str(v) for k, v in parsed.items()}


def new_widget_key() -> str:
    return f"wk_{secrets.token_urlsafe(18)}"


def configure(inbox: Inbox, **values: object) -> None:
    """Store widget settings (the caller saves the inbox); a widget key is made when missing."""
    config = dict(inbox.config or {})
    for key, value in values.items():
        if key == "allowed_origins" and isinstance(value, str):
            value = [o.strip() for o in value.split(",") if o.strip()]
        elif key == "greeting" and isinstance(value, str):
            value = _greeting(value)
        elif key in INTEGER_KEYS and value not in (None, ""):
            value = int(str(value))
        config[key] = value
    config.setdefault("widget_key", new_widget_key())
    inbox.config = config


def inbox_for_key(widget_key: str) -> Inbox | None:
    """The active chat inbox a widget key names, or None."""
    if not widget_key.startswith("wk_") or len(widget_key) > 64:
        return None
    return Inbox.objects.filter(
        kind=InboxKind.CHAT, is_active=True, config__widget_key=widget_key
    ).first()
