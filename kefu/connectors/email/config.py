"""An email inbox's settings, in ``Inbox.config``; passwords and tokens encrypted at rest.

``address`` (what customers write to and replies come from), ``smtp_host``/``smtp_port``/
``smtp_security`` ("starttls", "ssl" or "none")/``smtp_user``/``smtp_password`` for replies, and
``ingest_token``: the bearer token a mail service (or an MTA pipe) uses to post raw RFC 822 mail
to kefu.
"""

from __future__ import annotations

from dataclasses import dataclass

from kefu.conversations.models import Inbox
from kefu.core.secrets import decrypt, encrypt

SECRET_KEYS = ("smtp_password", "ingest_token")
SECURITY = ("starttls", "ssl", "none")


@dataclass(frozen=True)
class EmailSettings:
    address: str
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_user: str = ""
    smtp_password: str = ""
    ingest_token: str = ""

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2] or "kefu.invalid"


def settings_of(inbox: Inbox) -> EmailSettings:
    config = inbox.config or {}
    secrets = {key: decrypt(config[key]) if config.get(key) else "" for key in SECRET_KEYS}
    security = str(config.get("smtp_security") or "starttls")
    return EmailSettings(
        address=str(config.get("address") or ""),
        smtp_host=str(config.get("smtp_host") or ""),
        smtp_port=int(config.get("smtp_port") or 587),
        smtp_security=security if security in SECURITY else "starttls",
        smtp_user=str(config.get("smtp_user") or ""),
        **secrets,
    )


def configure(inbox: Inbox, **values: object) -> None:
    """Store settings; the secret ones encrypted (the caller saves the inbox)."""
    config = dict(inbox.config or {})
    for key, value in values.items():
        config[key] = encrypt(str(value)) if key in SECRET_KEYS else value
    inbox.config = config
