"""The task path end to end: a real worker (database or RQ) runs what reply() enqueued."""

from __future__ import annotations

import threading

import pytest
from django.core.management import call_command
from django.db import connection
from django_tasks import TaskResultStatus
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from kefu.connectors.base import ConnectorError
from kefu.conversations import actions
from kefu.conversations.models import DeliveryStatus
from kefu.conversations.tasks import deliver_message
from tests.tasks import jobs
from tests.tasks.conftest import start_conversation

pytestmark = pytest.mark.django_db(transaction=True)


def run_database_worker() -> None:
    """``kefu worker``'s database worker, in batch mode: run what is ready, then return."""
    call_command(
        "db_worker", queue_name="*", batch=True, startup_delay=False, reload=False, verbosity=0
    )


def test_the_database_worker_delivers_a_committed_reply(db_tasks, staff):
    # Given a reply committed in an API inbox (its delivery task enqueued on commit)
    message = actions.reply(conversation=start_conversation(), actor=staff, text="Shipped today")
    assert DBTaskResult.objects.ready().count() == 1

    # When a worker runs
    run_database_worker()

    # Then the message is sent and the task finished
    message.refresh_from_db()
    assert message.delivery_status == DeliveryStatus.SENT
    result = DBTaskResult.objects.get()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == "sent"


def run_workers_together(count: int) -> None:
    """``count`` database workers in threads (each its own connection) until the queue is empty."""
    start = threading.Barrier(count)

    def work(worker: Worker) -> None:
        try:
            start.wait()
            worker.run()
        finally:
            connection.close()

    threads = [
        threading.Thread(
            target=work,
            name=f"worker-{n}",
            args=(
                Worker(
                    queue_names=["*"],
                    interval=0,
                    batch=True,
                    backend_name="default",
                    startup_delay=False,
                    max_tasks=None,
                    worker_id=f"worker-{n}",
                    excluded_queue_names=[],
                ),
            ),
        )
        for n in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_two_workers_never_run_one_task_twice(db_tasks):
    # Given many ready tasks
    jobs.RUNS.clear()
    total = 120
    for number in range(total):
        jobs.record_run.enqueue(number)

    # When two workers drain the queue at the same time
    run_workers_together(2)

    # Then every task ran exactly once, and each result names exactly one worker
    assert sorted(number for number, _ in jobs.RUNS) == list(range(total))
    results = list(DBTaskResult.objects.all())
    assert len(results) == total
    assert {r.status for r in results} == {TaskResultStatus.SUCCESSFUL}
    assert all(len(r.worker_ids) == 1 for r in results)


def test_a_delivery_enqueued_twice_is_sent_once_by_two_workers(db_tasks, staff, whatsapp_sender):
    # Given one reply whose delivery task got enqueued several times (a replayed event)
    message = actions.reply(
        conversation=start_conversation("whatsapp"), actor=staff, text="Refund issued"
    )
    for _ in range(4):
        deliver_message.enqueue(message.pk)

    run_workers_together(2)

    message.refresh_from_db()
    assert message.delivery_status == DeliveryStatus.SENT
    assert whatsapp_sender.sent == [message.pk]
    outcomes = sorted(r.return_value for r in DBTaskResult.objects.all())
    assert outcomes == ["sent", "skipped", "skipped", "skipped", "skipped"]


# --- Redis / RQ (the scale configuration) ------------------------------------------------------


@pytest.fixture
def rq_queue():
    """The RQ queue kefu enqueues to, emptied before and after (its registries too)."""
    import django_rq
    from django_tasks_rq import Job

    queue = django_rq.get_queue("default", job_class=Job)

    def empty() -> None:
        queue.empty()
        for registry in (
            queue.scheduled_job_registry,
            queue.failed_job_registry,
            queue.finished_job_registry,
            queue.started_job_registry,
            queue.deferred_job_registry,
        ):
            for job_id in registry.get_job_ids():
                registry.remove(job_id, delete_job=True)

    empty()
    yield queue
    empty()


def run_rq_burst() -> None:
    from kefu.core.rq_worker import run_rq_worker

    run_rq_worker(burst=True)


@pytest.mark.redis
def test_an_rq_worker_delivers_a_committed_reply(rq_queue, staff):
    # Given a reply whose delivery was enqueued on Redis
    message = actions.reply(conversation=start_conversation(), actor=staff, text="Shipped today")
    assert rq_queue.count == 1

    # When an RQ worker runs in burst mode
    run_rq_burst()

    # Then the message is sent and the queue is empty
    message.refresh_from_db()
    assert message.delivery_status == DeliveryStatus.SENT
    assert rq_queue.count == 0
    assert rq_queue.failed_job_registry.count == 0


@pytest.mark.redis
def test_on_rq_a_delivery_enqueued_twice_is_sent_once(rq_queue, staff):
    message = actions.reply(conversation=start_conversation(), actor=staff, text="Refund issued")
    extra = deliver_message.enqueue(message.pk)

    run_rq_burst()

    message.refresh_from_db()
    assert message.delivery_status == DeliveryStatus.SENT
    assert deliver_message.get_result(extra.id).return_value in {"sent", "skipped"}
    assert sorted(
        deliver_message.get_result(job_id).return_value
        for job_id in rq_queue.finished_job_registry.get_job_ids()
    ) == ["sent", "skipped"]


@pytest.mark.redis
def test_on_rq_a_transient_failure_is_scheduled_for_later(rq_queue, staff, whatsapp_sender):
    # Given a provider that times out (the forked job inherits this stand-in)
    whatsapp_sender.outcomes = [ConnectorError("provider timed out", permanent=False)]
    message = actions.reply(
        conversation=start_conversation("whatsapp"), actor=staff, text="Shipped"
    )

    run_rq_burst()

    # Then the message waits in the queue, and attempt 2 is scheduled on Redis
    message.refresh_from_db()
    assert message.delivery_status == DeliveryStatus.QUEUED
    assert message.delivery_error == "provider timed out"
    [scheduled_id] = rq_queue.scheduled_job_registry.get_job_ids()
    assert rq_queue.fetch_job(scheduled_id).kwargs == {}
    assert list(rq_queue.fetch_job(scheduled_id).args) == [message.pk, 2]
