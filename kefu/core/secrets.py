"""Secrets at rest (channel credentials, webhook secrets) encrypted with Fernet.

The key is derived from ``KEFU_ENCRYPTION_KEY`` when set, else from SECRET_KEY. Rotation: list old
keys in ``KEFU_ENCRYPTION_OLD_KEYS`` (comma separated); values decrypt with any, encrypt with the
first.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

from kefu.config.env import env_list, env_str


def _fernet_for(material: str) -> Fernet:
    digest = hashlib.sha256(("kefu-secrets:" + material).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


@cache
def _cipher() -> MultiFernet:
    primary = env_str("KEFU_ENCRYPTION_KEY", settings.SECRET_KEY)
    old = env_list("KEFU_ENCRYPTION_OLD_KEYS", [])
    return MultiFernet([_fernet_for(k) for k in [primary, *old]])


def encrypt(value: str) -> str:
    return _cipher().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _cipher().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("secret cannot be decrypted with the configured keys") from exc


class EncryptedTextField(models.TextField):
    """A text column stored encrypted; reads give plain text back. Not searchable by design."""

    def from_db_value(self, value, expression, connection):  # type: ignore[no-untyped-def]
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):  # type: ignore[no-untyped-def]
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)
