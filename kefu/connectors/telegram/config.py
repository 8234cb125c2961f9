"""A Telegram inbox's settings, kept in ``Inbox.config`` with the secrets encrypted at rest.

``bot_token`` (from @BotFather) and ``webhook_secret`` (sent back by Telegram in the
``X-Telegram-Bot-Api-Secret-Token`` header, chosen when the webhook is set) are stored encrypted
(kefu.core.secrets); ``api_base`` is for tests and self-hosted Bot API servers.
"""

from __future__ import annotations

from dataclasses import dataclass

from kefu.conversations.models import Inbox
from kefu.core.secrets import decrypt, encrypt

DEFAULT_API_BASE = "https://api.telegram.org"


@dataclass(frozen=True)
class TelegramSettings:
    bot_token: str
    webhook_secret: str
    api_base: str = DEFAULT_API_BASE

    def method_url(self, method: str) -> str:
        return f"{self.api_base.rstrip('/')}/bot{self.bot_token}/{method}"

    def file_url(self, path: str) -> str:
        return f"{self.api_base.rstrip('/')}/file/bot{self.bot_token}/{path}"


def settings_of(inbox: Inbox) -> TelegramSettings:
    config = inbox.config or {}
    return TelegramSettings(
        bot_token=decrypt(config["bot_token"]) if config.get("bot_token") else "",
        webhook_secret=decrypt(config["webhook_secret"]) if config.get("webhook_secret") else "",
        api_base=str(config.get("api_base") or DEFAULT_API_BASE),
    )


def configure(inbox: Inbox, *, bot_token: str, webhook_secret: str, api_base: str = "") -> None:
    """Store the inbox's credentials, encrypted (the caller saves the inbox)."""
    config = dict(inbox.config or {})
    config["bot_token"] = encrypt(bot_token)
    config["webhook_secret"] = encrypt(webhook_secret)
    if api_base:
        config["api_base"] = api_base
    inbox.config = config
