"""Drain pokes: the enqueue runs in a background thread, never in the thread that poked."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction
from django_tasks_db.models import DBTaskResult

from kefu.core import drains
from kefu.core.drains import DrainPoke

pytestmark = pytest.mark.django_db(transaction=True)

TASK = "kefu.automation.tasks.drain_intake"


def a_poke() -> DrainPoke:
    return DrainPoke(
        TASK, window=0.2, drain=lambda: None, is_sync=lambda: False, on_failure="test poke failed"
    )


def queued() -> int:
    return DBTaskResult.objects.filter(task_path=TASK).count()


def test_a_poke_enqueues_from_a_background_thread(db_tasks, monkeypatch):
    # On SQLite the task queue is a table: an enqueue waits for the write lock, which the
    # storing thread that poked must not do (docs/decisions.md, session 10).
    monkeypatch.setattr(drains, "IN_BACKGROUND", True)
    monkeypatch.setattr(drains, "IDLE_SECONDS", 0.1)
    poke = a_poke()
    enqueued_by: list[str] = []
    real_enqueue = poke.enqueue

    def recording_enqueue() -> None:
        enqueued_by.append(threading.current_thread().name)
        real_enqueue()

    poke.enqueue = recording_enqueue  # type: ignore[method-assign]
    poke()
    poke()  # within the window: nothing more
    deadline = time.monotonic() + 10
    while queued() < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert queued() == 1
    assert enqueued_by == [f"kefu-poke-{TASK.rsplit('.', 1)[-1]}"]
    # The thread gives its connection back once idle: nothing holds the test database.
    time.sleep(0.3)


def test_a_poke_inside_a_transaction_enqueues_in_it(db_tasks, monkeypatch):
    monkeypatch.setattr(drains, "IN_BACKGROUND", True)
    poke = a_poke()
    with transaction.atomic():
        poke()
        assert queued() == 1  # written by this connection, in this transaction
        transaction.set_rollback(True)
    assert queued() == 0  # rolled back with the rows it was poked for
    assert connection.in_atomic_block is False


def test_flush_enqueues_what_a_poke_left_waiting(db_tasks):
    poke = a_poke()
    assert poke.flush() is False
    poke._wanted.set()  # a poke whose thread has not run yet (the process is exiting)
    assert poke.flush() is True
    assert queued() == 1
