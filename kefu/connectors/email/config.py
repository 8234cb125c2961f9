"""An email inbox's settings, in ``Inbox.config``; passwords and tokens encrypted at rest.

``address`` (what customers write to and replies come from), ``smtp_host``/``smtp_port``/
``smtp_security`` ("starttls", "ssl" or "none")/``smtp_user``/``smtp_password`` for replies, and
``ingest_token``: the bearer token a mail service (or an MTA pipe) uses to post raw RFC 822 mail
to kefu.

IMAP polling (``kefu poll_mail``): ``imap_host``, ``imap_port`` (993 with "ssl", else 143),
``imap_security`` ("ssl", "starttls" or "none"), ``imap_user``, ``imap_password``,
``imap_folders`` (a list, or a comma-separated string; default ``["INBOX"]``) and
``imap_since_days`` (the first time a folder is read, or after its UIDVALIDITY changed, take
only mail that arrived in the last N days; 0: only mail arriving from now on; unset: all).

Mail handling: ``max_attachment_bytes`` (default 25 MB; larger attachments are recorded as
refused), ``flood_per_hour`` (mails from one sender in an hour beyond which they are flagged as a
suspected flood; default 30) and ``marketplace_inbox_id`` (the marketplace inbox Amazon and eBay
relay mail is put on; none: it stays in this inbox, flagged).
"""

from __future__ import annotations

from dataclasses import dataclass

from kefu.conversations.models import Inbox
from kefu.core.secrets import decrypt, encrypt

SECRET_KEYS = ("smtp_password", "ingest_token", "imap_password")
SECURITY = ("starttls", "ssl", "none")
DEFAULT_MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
DEFAULT_FLOOD_PER_HOUR = 30
# Every key configure() accepts (``kefu configure_channel`` checks against it).
KEYS = (
    "address", "ingest_token",
    "smtp_host", "smtp_port", "smtp_security", "smtp_user", "smtp_password",
    "imap_host", "imap_port", "imap_security", "imap_user", "imap_password", "imap_folders",
    "imap_since_days",
    "max_attachment_bytes", "flood_per_hour", "marketplace_inbox_id",
)  # fmt: skip
_INTEGER_KEYS = (
    "smtp_port", "imap_port", "max_attachment_bytes", "flood_per_hour", "marketplace_inbox_id",
)  # fmt: skip


@dataclass(frozen=True)
class EmailSettings:
    address: str
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_user: str = ""
    smtp_password: str = ""
    ingest_token: str = ""
    imap_host: str = ""
    imap_port: int = 993
    imap_security: str = "ssl"
    imap_user: str = ""
    imap_password: str = ""
    imap_folders: tuple[str, ...] = ("INBOX",)
    imap_since_days: int | None = None
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
    flood_per_hour: int = DEFAULT_FLOOD_PER_HOUR
    marketplace_inbox_id: int | None = None

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2] or "kefu.invalid"

    @property
    def polls_imap(self) -> bool:
        return bool(self.imap_host and self.imap_user)


def settings_of(inbox: Inbox) -> EmailSettings:
    config = inbox.config or {}
    secrets = {key: decrypt(config[key]) if config.get(key) else "" for key in SECRET_KEYS}
    smtp_security = _security(config.get("smtp_security"), "starttls")
    imap_security = _security(config.get("imap_security"), "ssl")
    return EmailSettings(
        address=str(config.get("address") or ""),
        smtp_host=str(config.get("smtp_host") or ""),
        smtp_port=_positive(config.get("smtp_port")) or 587,
        smtp_security=smtp_security,
        smtp_user=str(config.get("smtp_user") or ""),
        imap_host=str(config.get("imap_host") or ""),
        imap_port=_positive(config.get("imap_port")) or (993 if imap_security == "ssl" else 143),
        imap_security=imap_security,
        imap_user=str(config.get("imap_user") or ""),
        imap_folders=_folders(config.get("imap_folders")),
        imap_since_days=_not_negative(config.get("imap_since_days")),
        max_attachment_bytes=_positive(config.get("max_attachment_bytes"))
        or DEFAULT_MAX_ATTACHMENT_BYTES,
        flood_per_hour=_positive(config.get("flood_per_hour")) or DEFAULT_FLOOD_PER_HOUR,
        marketplace_inbox_id=_positive(config.get("marketplace_inbox_id")),
        **secrets,
    )


def configure(inbox: Inbox, **values: object) -> None:
    """Store settings; the secret ones encrypted (the caller saves the inbox).

    Raises ValueError for an unknown key or a value of the wrong shape, so a typo in a setting
    is an error and not a setting silently ignored.
    """
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown email setting(s): {', '.join(unknown)}")
    config = dict(inbox.config or {})
    for key, value in values.items():
        config[key] = _stored(key, value)
    inbox.config = config


def _stored(key: str, value: object) -> object:
    if key in SECRET_KEYS:
        return encrypt(str(value))
    if key in _INTEGER_KEYS:
        number = _positive(value)
        if number is None:
            raise ValueError(f"{key} must be a positive whole number, got {value!r}")
        return number
    if key in ("smtp_security", "imap_security") and value not in SECURITY:
        raise ValueError(f"{key} must be one of {', '.join(SECURITY)}, got {value!r}")
    if key == "imap_folders":
        return list(_folders(value))
    if key == "imap_since_days":
        days = _not_negative(value)
        if days is None:
            raise ValueError(f"{key} must be 0 or a positive whole number, got {value!r}")
        return days
    return value


def _security(value: object, default: str) -> str:
    return str(value) if value in SECURITY else default


def _positive(value: object) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _not_negative(value: object) -> int | None:
    number = _positive(value)
    return 0 if number is None and str(value).strip() == "0" else number


def _folders(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        return ("INBOX",)
    folders = tuple(dict.fromkeys(str(name).strip() for name in value if str(name).strip()))
    return folders or ("INBOX",)
