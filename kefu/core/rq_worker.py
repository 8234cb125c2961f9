"""An RQ worker for the django-tasks RQ backend (KEFU_REDIS_URL set)."""

from __future__ import annotations

import socket
import uuid

from django.conf import settings
from django.db import connections


def run_rq_worker(*, burst: bool = False) -> bool:
    """Process the default queue; several of these on any number of machines are safe.

    RQ pops each job atomically from Redis, so one job goes to one worker; deliveries add their
    own claim on top (see kefu.conversations.tasks). ``burst``: stop when the queue is empty
    (tests, cron-style runs). Returns whether any job was processed.
    """
    import django_rq
    from django_tasks_rq import Job
    from rq import Worker

    if not settings.REDIS_URL:
        raise RuntimeError("run_rq_worker needs KEFU_REDIS_URL")
    queue = django_rq.get_queue("default", job_class=Job)
    worker = Worker(
        [queue],
        connection=queue.connection,
        job_class=Job,
        name=f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}",
    )
    # Each job runs in a forked child: a database connection inherited across the fork would be
    # shared by two processes, so none is left open to inherit.
    connections.close_all()
    return bool(worker.work(burst=burst, with_scheduler=True))
