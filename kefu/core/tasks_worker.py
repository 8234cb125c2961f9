"""Running background tasks: in-process for `kefu run`, as a process for `kefu worker`."""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import connection

logger = logging.getLogger(__name__)


def uses_database_tasks() -> bool:
    return settings.TASKS["default"]["BACKEND"] == "django_tasks_db.DatabaseBackend"


@dataclass
class InProcessWorker:
    """The database worker running in a daemon thread of the web process."""

    thread: threading.Thread
    worker: Any  # django_tasks_db's Worker

    def stop(self, timeout: float = 30) -> None:
        """Finish the current task, then stop (waits up to ``timeout`` seconds)."""
        self.worker.running = False
        self.thread.join(timeout)


def start_in_process_worker(*, interval: float = 0.5) -> InProcessWorker | None:
    """Start the database-backed worker in a daemon thread (embedded mode). None with Redis."""
    if not uses_database_tasks():
        return None
    from django_tasks_db.management.commands.db_worker import Worker

    worker = Worker(
        queue_names=["*"],
        interval=interval,
        batch=False,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id=f"{socket.gethostname()[:40]}-inprocess-{uuid.uuid4().hex[:8]}",
        excluded_queue_names=[],
    )

    def run() -> None:
        try:
            before_work()
            worker.run()
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run, name="kefu-tasks", daemon=True)
    thread.start()
    return InProcessWorker(thread=thread, worker=worker)


def run_worker_process() -> None:
    """Block running tasks: the database worker, or an RQ worker when Redis is configured."""
    before_work()
    if uses_database_tasks():
        call_command("db_worker", queue_name="*", interval=0.5)
        return
    from kefu.core.rq_worker import run_rq_worker

    run_rq_worker()


def before_work() -> None:
    """What a worker does when it starts: clean up after workers that died mid-task, and start
    the commerce app's periodic chain."""
    from kefu.conversations.tasks import recover_deliveries

    try:
        recover_deliveries()
    except Exception:
        # Never keep a worker from starting: the sweep runs again at the next start.
        logger.exception("could not recover deliveries")
    from kefu.commerce.schedule import ensure_ticking

    try:
        ensure_ticking()  # the commerce tick: tracking polls, stalled parcels, reconciliation
    except Exception:
        logger.exception("could not start the commerce tick")
