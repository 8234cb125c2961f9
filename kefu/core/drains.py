"""Asking a background drain to run soon, cheaply, from a hot path.

Queues drained by a task (automation's intake, commerce's webhook deliveries) are poked after
each write. A poke costs a clock comparison; at most one deferred task per process per window
is enqueued, and it starts after the window closes, so every row committed before a poke is
seen by the drain enqueued in its window. When the tasks run inline (tests, the immediate
backend), the poke drains at once instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from importlib import import_module

from django.utils import timezone

logger = logging.getLogger(__name__)


class DrainPoke:
    def __init__(
        self,
        task: str,
        *,
        window: float,
        drain: Callable[[], object],
        is_sync: Callable[[], bool],
        on_failure: str,
    ) -> None:
        """``task``: the drain task's dotted path (imported on first use: tasks modules import
        the module that pokes). ``on_failure``: what is logged when the enqueue fails."""
        self.task = task
        self.window = window
        self.drain = drain
        self.is_sync = is_sync
        self.on_failure = on_failure
        self.next_slot = 0.0

    def __call__(self) -> None:
        if self.is_sync():
            self.drain()
            return
        now = time.monotonic()
        if now < self.next_slot:
            return
        self.next_slot = now + self.window
        module, name = self.task.rsplit(".", 1)
        task = getattr(import_module(module), name)
        try:
            if task.get_backend().supports_defer:
                task.using(run_after=timezone.now() + timedelta(seconds=self.window)).enqueue()
            else:
                task.enqueue()
        except Exception:
            # Stored is safe: each queue also has a periodic tick that drains it.
            self.next_slot = 0.0
            logger.exception(self.on_failure)

    def reset(self) -> None:
        """Forget the current window (tests)."""
        self.next_slot = 0.0
