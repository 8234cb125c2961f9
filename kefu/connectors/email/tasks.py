"""IMAP polling as background work: ``poll_mail_tick`` makes one pass over every mailbox and
schedules the next one ``KEFU_MAIL_POLL_SECONDS`` later (default 60), on whatever runs the task
queue (``kefu run``'s in-process worker, ``kefu worker``, RQ at scale). Start the chain once
with ``kefu poll_mail --enqueue``; it keeps going as long as a worker runs.

For mail within seconds (IMAP IDLE), run ``kefu poll_mail`` as a process of its own instead.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.core.cache import cache
from django.utils import timezone
from django_tasks import task

from kefu.config.env import env_int
from kefu.connectors.email import imap

logger = logging.getLogger(__name__)

CLAIM_KEY = "kefu:mail:poll-tick"


def interval() -> int:
    return env_int("KEFU_MAIL_POLL_SECONDS", 60, minimum=5)


@task()
def poll_mail_tick() -> dict[str, int]:
    """One pass over every polled mailbox, then the next tick is scheduled.

    Several chains may start (``--enqueue`` run twice): a turn is claimed in the cache for half
    an interval, and a chain that loses the claim ends, so duplicates die out to one chain.
    """
    seconds = interval()
    if not cache.add(CLAIM_KEY, timezone.now().isoformat(), timeout=max(1, seconds // 2)):
        return {}
    passes = imap.poll_all()
    summary = {
        "mailboxes": len(passes),
        "failed": sum(1 for p in passes if p.error),
        "stored": sum(f.stored for p in passes for f in p.folders),
    }
    schedule_next(seconds)
    return summary


def schedule_next(seconds: int | None = None) -> bool:
    """Enqueue the next tick; False when the task backend cannot run tasks later."""
    if not poll_mail_tick.get_backend().supports_defer:
        logger.warning("the task backend cannot schedule; run `kefu poll_mail` instead")
        return False
    run_after = timezone.now() + timedelta(seconds=seconds or interval())
    poll_mail_tick.using(run_after=run_after).enqueue()
    return True
