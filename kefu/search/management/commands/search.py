"""``kefu search reindex``: rebuild the search index from the messages and customers."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand
from tqdm import tqdm

from kefu.conversations.models import Message
from kefu.customers.models import Customer
from kefu.search import index


class Command(BaseCommand):
    help = (
        "Search index maintenance. `kefu search reindex` rebuilds it (re-creating the engine's "
        "schema if a migration dropped it) with a progress bar; `kefu search catch-up` indexes "
        "only the messages missing from it."
    )

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        sub = parser.add_subparsers(dest="action", required=True)
        reindex = sub.add_parser("reindex", help="rebuild the whole index")
        reindex.add_argument("--batch", type=int, default=2000, help="rows per transaction")
        reindex.add_argument("--no-progress", action="store_true", help="no progress bar")
        sub.add_parser("catch-up", help="index the messages that have no entry yet")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        if options["action"] == "catch-up":
            self._catch_up()
        else:
            self._reindex(options["batch"], options["no_progress"])

    def _reindex(self, batch: int, quiet: bool) -> None:
        total = Message.objects.count() + Customer.objects.filter(merged_into__isnull=True).count()
        started = time.monotonic()
        with tqdm(
            total=total, unit="row", disable=quiet, file=self.stderr, dynamic_ncols=True
        ) as bar:
            messages, customers = index.reindex_all(batch=batch, progress=bar.update)
        seconds = time.monotonic() - started
        self.stdout.write(
            f"indexed {messages} messages and {customers} customers in {seconds:.1f} s"
        )

    def _catch_up(self) -> None:
        self.stdout.write(f"indexed {index.catch_up_all()} missing messages")
