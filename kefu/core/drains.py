"""Asking a background drain to run soon, cheaply, from a hot path.

Queues drained by a task (automation's intake, commerce's webhook deliveries) are poked after
each write. A poke costs a clock comparison; at most one deferred task per process per window
is enqueued, and it starts after the window closes, so every row committed before a poke is
seen by the drain enqueued in its window. When the tasks run inline (tests, the immediate
backend), the poke drains at once instead.

The enqueue itself runs in a background thread of the process, not in the thread that poked.
On the embedded default the task queue is a table: an enqueue is a write transaction, which
waits for SQLite's one write lock. Made from the ingest path's after-commit hooks it held the
process's storing thread (the combiner's leader, kefu.conversations.batch) until the other
server process had finished its own transaction: under batch load that wait was a quarter of
the leader's time (bench/RESULTS.md, session 10). A poke made inside a transaction enqueues
in it, so the task commits (or rolls back) with the rows it was poked for.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from importlib import import_module

from django.db import connection
from django.utils import timezone

logger = logging.getLogger(__name__)

# False: a poke enqueues in the poking thread (the test suite: no thread may touch the test
# database after the test that poked).
IN_BACKGROUND = True
# The enqueuing thread gives its database connection back after this long without a poke.
IDLE_SECONDS = 5.0

_pokes: list[DrainPoke] = []


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
        self._wanted = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        _pokes.append(self)

    def __call__(self) -> None:
        if self.is_sync():
            self.drain()
            return
        now = time.monotonic()
        if now < self.next_slot:
            return
        self.next_slot = now + self.window
        if IN_BACKGROUND and not connection.in_atomic_block:
            self._ask_enqueuer()
        else:
            self.enqueue()

    def enqueue(self) -> None:
        """Enqueue the drain task now, in this thread (deferred by the window if the backend
        can defer). A failure is logged and reopens the window."""
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

    def flush(self) -> bool:
        """Enqueue now what a poke asked the background thread for; True if there was any."""
        if not self._wanted.is_set():
            return False
        self._wanted.clear()
        self.enqueue()
        return True

    def reset(self) -> None:
        """Forget the current window (tests)."""
        self.next_slot = 0.0

    def _ask_enqueuer(self) -> None:
        with self._thread_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=f"kefu-poke-{self.task.rsplit('.', 1)[-1]}", daemon=True
                )
                self._thread.start()
        self._wanted.set()

    def _run(self) -> None:
        while True:
            if not self._wanted.wait(IDLE_SECONDS):
                connection.close()  # idle: hold no database session meanwhile
                self._wanted.wait()
            # Cleared before the enqueue: a poke arriving during it asks for one more.
            self._wanted.clear()
            self.enqueue()


def _flush_all() -> None:
    for poke in _pokes:
        poke.flush()


# A poke still waiting for its thread at exit is enqueued then (the ticks would drain its rows
# later anyway: late, never lost).
atexit.register(_flush_all)
