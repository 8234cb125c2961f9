"""``kefu token``: API tokens from the command line (create, list, revoke)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kefu.accounts.actions import create_token, revoke_token
from kefu.accounts.models import Agent, ApiToken


class Command(BaseCommand):
    help = (
        "API tokens. `kefu token create --user NAME` prints a new token (shown once); "
        "`kefu token list [--user NAME]`; `kefu token revoke PREFIX`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="{create,list,revoke}")
        create = sub.add_parser("create", help="create a token and print it (shown only once)")
        create.add_argument("--user", required=True, help="username the token acts as")
        create.add_argument("--name", default="cli", help="a label to recognise the token by")
        listing = sub.add_parser("list", help="list tokens (never their secret)")
        listing.add_argument("--user", help="only this user's tokens")
        revoke = sub.add_parser("revoke", help="revoke the token starting with PREFIX")
        revoke.add_argument("prefix", help="the token's first characters, as `list` shows them")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        getattr(self, f"_{options['action']}")(options)

    def _create(self, options: dict) -> None:
        user = Agent.objects.filter(username=options["user"], is_active=True).first()
        if user is None:
            raise CommandError(f"no active user named {options['user']!r}")
        _, raw = create_token(user=user, name=options["name"])
        # Only the token on stdout, so that TOKEN=$(kefu token create --user NAME) works.
        self.stdout.write(raw)

    def _list(self, options: dict) -> None:
        tokens = ApiToken.objects.select_related("user").order_by("created_at")
        if options["user"]:
            tokens = tokens.filter(user__username=options["user"])
        for token in tokens:
            state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "active"
            used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
            self.stdout.write(
                f"{token.prefix}…  {token.user.username:<16} {token.name:<20} "
                f"created {token.created_at:%Y-%m-%d}  last used {used}  {state}"
            )

    def _revoke(self, options: dict) -> None:
        prefix = options["prefix"].rstrip("…")
        matches = list(
            ApiToken.objects.filter(revoked_at__isnull=True, prefix__startswith=prefix[:12])
        )
        # The stored prefix is the token's first 12 characters: a longer argument must agree.
        matches = [t for t in matches if prefix.startswith(t.prefix) or t.prefix.startswith(prefix)]
        if len(matches) != 1:
            found = "no active token" if not matches else f"{len(matches)} active tokens"
            raise CommandError(f"{found} starting with {prefix!r}; see `kefu token list`")
        revoke_token(token=matches[0], actor=None)
        self.stdout.write(f"revoked {matches[0]}")
