"""``kefu configure_channel --inbox 3 bot_token=env:TELEGRAM_TOKEN webhook_secret=env:TG_SECRET``

Stores a channel inbox's settings through its connector (secrets encrypted at rest). A value
``env:NAME`` is read from the environment, so secrets stay out of the shell history.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kefu.conversations.models import Inbox, InboxKind


def _configurers() -> dict[str, tuple[Callable[..., None], set[str]]]:
    from kefu.connectors.chat import config as chat
    from kefu.connectors.email import config as email
    from kefu.connectors.telegram import config as telegram
    from kefu.connectors.whatsapp import config as whatsapp

    email_keys = set(email.KEYS)
    return {
        InboxKind.TELEGRAM: (telegram.configure, {"bot_token", "webhook_secret", "api_base"}),
        InboxKind.WHATSAPP: (
            whatsapp.configure,
            {"phone_number_id", "api_base", "app_secret", "verify_token", "access_token"},
        ),
        InboxKind.EMAIL: (email.configure, email_keys),
        InboxKind.CHAT: (
            chat.configure,
            {
                "allowed_origins",
                "greeting",
                "offline_email_inbox_id",
                "max_attachment_bytes",
                "new_conversations_per_hour",
            },
        ),
        InboxKind.MARKETPLACE: (email.configure, email_keys),
    }


class Command(BaseCommand):
    help = "Store a channel inbox's settings: key=value pairs (env:NAME reads the environment)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--inbox", type=int, required=True, help="the inbox id")
        parser.add_argument("settings", nargs="*", help="key=value pairs")

    def handle(self, *args: object, **options: object) -> None:
        inbox = Inbox.objects.filter(pk=int(str(options["inbox"]))).first()
        if inbox is None:
            raise CommandError(f"no inbox {options['inbox']}")
        configurers = _configurers()
        if inbox.kind not in configurers:
            raise CommandError(f"inbox {inbox.pk} is a {inbox.kind} inbox: nothing to configure")
        configure, allowed = configurers[inbox.kind]
        values = dict(_pair(raw) for raw in options["settings"])  # type: ignore[attr-defined]
        unknown = sorted(set(values) - allowed)
        if unknown:
            takes = ", ".join(sorted(allowed))
            raise CommandError(
                f"unknown setting(s) {', '.join(unknown)}; {inbox.kind} takes {takes}"
            )
        try:
            configure(inbox, **values)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        inbox.save(update_fields=["config"])
        self.stdout.write(f"inbox {inbox.pk} ({inbox.kind}): {', '.join(sorted(values))} stored")


def _pair(raw: str) -> tuple[str, str]:
    key, sep, value = raw.partition("=")
    if not sep or not key:
        raise CommandError(f"expected key=value, got {raw!r}")
    if value.startswith("env:"):
        name = value.removeprefix("env:")
        if name not in os.environ:
            raise CommandError(f"environment variable {name} is not set")
        value = os.environ[name]
    return key.strip(), value
