"""Tasks used only by the tests (importable by path, as every task must be)."""

from __future__ import annotations

import threading

from django_tasks import task

# (argument, worker thread) for every execution of record_run, in this process.
RUNS: list[tuple[int, str]] = []


@task()
def record_run(number: int) -> int:
    RUNS.append((number, threading.current_thread().name))
    return number
