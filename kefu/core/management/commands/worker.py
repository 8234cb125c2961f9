from django.core.management.base import BaseCommand

from kefu.core.gc_tuning import settle_after_startup
from kefu.core.tasks_worker import run_worker_process


class Command(BaseCommand):
    help = "Run background tasks (database worker, or RQ on Redis when KEFU_REDIS_URL is set)."

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        settle_after_startup()
        run_worker_process()
