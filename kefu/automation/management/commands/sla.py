import time

from django.core.management.base import BaseCommand

from kefu.automation import intake


class Command(BaseCommand):
    help = (
        "SLA and automation upkeep: `kefu sla tick` fires due SLA warnings and breaches, wakes "
        "snoozed conversations, returns work of away agents, routes queues, runs time rules. "
        "`--loop` repeats every --interval seconds (for a process supervisor); safe to run on "
        "several machines at once."
    )

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        sub = parser.add_subparsers(dest="action", required=True)
        tick = sub.add_parser("tick", help="run one pass (or --loop)")
        tick.add_argument("--loop", action="store_true", help="repeat until interrupted")
        tick.add_argument("--interval", type=float, default=intake.TICK_SECONDS)

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        while True:
            intake.claim_tick()
            summary = intake.tick()
            self.stdout.write(" ".join(f"{k}={v}" for k, v in summary.items()))
            if not options["loop"]:
                return
            time.sleep(options["interval"])
