"""A WhatsApp Cloud API inbox's settings, in ``Inbox.config`` with the secrets encrypted.

``app_secret`` signs webhooks (X-Hub-Signature-256), ``verify_token`` answers Meta's
subscription handshake, ``access_token`` and ``phone_number_id`` send messages; ``api_base`` is
for tests (default https://graph.facebook.com/v21.0).
"""

from __future__ import annotations

from dataclasses import dataclass

from kefu.conversations.models import Inbox
from kefu.core.secrets import decrypt, encrypt

DEFAULT_API_BASE = "https://graph.facebook.com/v21.0"
SECRET_KEYS = ("app_secret", "verify_token", "access_token")


@dataclass(frozen=True)
class WhatsAppSettings:
    app_secret: str
    verify_token: str
    access_token: str
    phone_number_id: str
    api_base: str = DEFAULT_API_BASE

    def url(self, path: str) -> str:
        return f"{self.api_base.rstrip('/')}/{path.lstrip('/')}"


def settings_of(inbox: Inbox) -> WhatsAppSettings:
    config = inbox.config or {}
    secrets = {key: decrypt(config[key]) if config.get(key) else "" for key in SECRET_KEYS}
    return WhatsAppSettings(
        **secrets,
        phone_number_id=str(config.get("phone_number_id") or ""),
        api_base=str(config.get("api_base") or DEFAULT_API_BASE),
    )


def configure(inbox: Inbox, *, phone_number_id: str, api_base: str = "", **secrets: str) -> None:
    """Store the inbox's credentials, the secret ones encrypted (the caller saves the inbox)."""
    config = dict(inbox.config or {})
    for key in SECRET_KEYS:
        if key in secrets:
            config[key] = encrypt(secrets[key])
    config["phone_number_id"] = phone_number_id
    if api_base:
        config["api_base"] = api_base
    inbox.config = config
