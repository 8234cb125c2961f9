"""``kefu poll_mail``: ingest mail by IMAP for every inbox that has IMAP settings.

See docs/channels-email.md.

Without options it runs until stopped (SIGTERM or Ctrl+C), one thread per mailbox folder, IDLE
where the server offers it. ``--once`` makes one pass over every mailbox (in parallel) and exits:
for cron, or a scheduler of your own; its exit status is 1 when a mailbox could not be read.
``--enqueue`` starts the periodic pass on the background worker instead (kefu.connectors.email
.tasks): no process of its own, mail within ``KEFU_MAIL_POLL_SECONDS``.
"""

from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kefu.connectors.email import imap


class Command(BaseCommand):
    help = "Ingest mail by IMAP from every email inbox that has IMAP settings."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one pass over every mailbox")
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="start the periodic pass on the background worker (kefu worker / kefu run)",
        )
        parser.add_argument(
            "--inbox", type=int, action="append", help="only this inbox (repeatable)"
        )
        parser.add_argument(
            "--parallel", type=int, default=4, help="mailboxes read at once with --once"
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=imap.POLL_SECONDS,
            help="seconds between passes for servers without IDLE",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["enqueue"]:
            from kefu.connectors.email.tasks import poll_mail_tick, schedule_next

            if not poll_mail_tick.get_backend().supports_defer:
                raise CommandError("this task backend cannot schedule; run `kefu poll_mail`")
            schedule_next(1)
            self.stdout.write("the background worker now polls mail periodically")
            return
        if options["once"]:
            self._once(options["inbox"], options["parallel"])
            return
        poller = imap.Poller(poll_seconds=options["interval"])
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: poller.stop())
        self.stdout.write("polling mail (IDLE where offered); stop with Ctrl+C")
        poller.run()

    def _once(self, inbox_ids: list[int] | None, parallel: int) -> None:
        passes = imap.poll_all(inbox_ids=inbox_ids, parallel=parallel)
        failed = False
        for done in passes:
            if done.error:
                failed = True
                self.stderr.write(f"inbox {done.inbox_id}: {done.error}")
            for folder in done.folders:
                self.stdout.write(
                    f"inbox {done.inbox_id} {folder.folder}: {folder.fetched} fetched, "
                    f"{folder.stored} stored, {folder.duplicates} already stored, "
                    f"{folder.skipped} skipped (auto-replies, bounces), {folder.refused} refused"
                    + (" (UIDVALIDITY changed: read again)" if folder.resynced else "")
                )
        if not passes:
            self.stdout.write("no inbox has IMAP settings")
        if failed:
            raise SystemExit(1)
