"""``kefu demo``: seed the demo data (refuses a database that has data, unless --force)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kefu.core.demo import DEMO_LOGINS, DemoRefused, seed_demo


class Command(BaseCommand):
    help = (
        "Seed demo data: a store, six inboxes, an admin and three agents in two teams, about "
        "200 customers and 300 conversations in five languages over the last 30 days."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force", action="store_true", help="add the demo to a database that has data"
        )

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        try:
            seed_demo(stdout=self.stdout, force=options["force"])
        except DemoRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write("Demo logins (demo data only):")
        for username, password, role in DEMO_LOGINS:
            self.stdout.write(f"  {username:<6} / {password}   ({role})")
