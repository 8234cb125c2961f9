"""The worker `kefu run` starts in its own process (embedded mode)."""

from __future__ import annotations

import time

import pytest

from kefu.conversations import actions
from kefu.conversations.models import DeliveryStatus, Message
from kefu.core.tasks_worker import start_in_process_worker
from tests.tasks.conftest import start_conversation

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for_status(message: Message, status: str, limit: float = 60) -> str:
    """Poll until ``message`` reaches ``status`` or ``limit`` seconds pass; returns the last one."""
    deadline = time.monotonic() + limit
    while True:
        current = Message.objects.get(pk=message.pk).delivery_status
        if current == status or time.monotonic() > deadline:
            return current
        time.sleep(0.05)


def test_the_in_process_worker_delivers_replies_and_stops(db_tasks, staff):
    # Given kefu's in-process worker running beside the web server
    handle = start_in_process_worker(interval=0.05)
    assert handle is not None
    try:
        # When an agent replies
        message = actions.reply(conversation=start_conversation(), actor=staff, text="Sent!")

        # Then the worker delivers it
        assert wait_for_status(message, DeliveryStatus.SENT) == DeliveryStatus.SENT
    finally:
        handle.stop()
    assert not handle.thread.is_alive()


def test_no_in_process_worker_with_redis(settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}

    assert start_in_process_worker() is None
