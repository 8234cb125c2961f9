"""The signed reply token in kefu's outgoing Message-IDs.

``<kefu.{message}.{conversation}.{signature}.{nonce}@domain>``: the signature is an HMAC of the
conversation id with the secret key, so a customer's reply (its In-Reply-To and References
carry our Message-ID) threads into the right conversation even when the message it answers is
not stored, and nobody can make up a token that threads a mail into someone else's conversation.
"""

from __future__ import annotations

import hmac
import re
import secrets

from django.utils.crypto import salted_hmac

_SALT = "kefu.connectors.email.reply-token"
_TOKEN = re.compile(r"^<kefu\.\d+\.(\d+)\.([0-9a-f]{24})\.[0-9a-z]+@[^<>@\s]+>$")


def signature(conversation_id: int) -> str:
    return salted_hmac(_SALT, str(conversation_id), algorithm="sha256").hexdigest()[:24]


def message_id(*, message_id: int, conversation_id: int, domain: str) -> str:
    nonce = secrets.token_hex(4)
    return f"<kefu.{message_id}.{conversation_id}.{signature(conversation_id)}.{nonce}@{domain}>"


def conversation_in(references: list[str]) -> int | None:
    """The conversation named by the newest validly signed token in ``references``, or None."""
    for reference in reversed(references):
        found = _TOKEN.match(reference)
        if found is None:
            continue
        conversation_id = int(found.group(1))
        if hmac.compare_digest(found.group(2), signature(conversation_id)):
            return conversation_id
    return None
