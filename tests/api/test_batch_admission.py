"""Batch requests take turns per process (BatchAdmissionMiddleware); single messages never wait."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from kefu.conversations import middleware
from kefu.conversations.models import Message
from tests.api.test_core_api import body, caller_for

pytestmark = pytest.mark.django_db(transaction=True)


def post_in_thread(me, path, payload, results):
    def post() -> None:
        try:
            results.append(me.post(path, payload).status_code)
        finally:
            connection.close()

    thread = threading.Thread(target=post)
    thread.start()
    return thread


def test_a_batch_waits_for_a_free_slot_and_a_single_message_does_not(client, agent, inbox):
    me = caller_for(client, agent)
    # Given every batch slot of this process taken
    for _ in range(middleware.BATCH_CONCURRENCY):
        middleware._batch_slots.acquire()
    batch_done: list[int] = []
    try:
        batch = post_in_thread(
            me, "/api/v1/messages/batch", {"messages": [body(inbox, "b-1")]}, batch_done
        )
        # When a single message arrives meanwhile, then it is stored at once
        assert me.post("/api/v1/messages", body(inbox, "s-1")).status_code == 202
        # And the batch is still waiting, with nothing of it stored
        batch.join(timeout=0.5)
        assert batch.is_alive() and batch_done == []
        assert not Message.objects.filter(external_id="b-1").exists()
    finally:
        for _ in range(middleware.BATCH_CONCURRENCY):
            middleware._batch_slots.release()
    # When a slot frees, then the batch goes through
    batch.join(timeout=10)
    assert batch_done == [202]
    assert Message.objects.filter(external_id="b-1").exists()
