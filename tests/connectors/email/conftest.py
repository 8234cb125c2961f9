"""Fixtures for the email connector: a real IMAP server (dovecot), started once per session,
and a real SMTP receiver (aiosmtpd) per test that sends.

Without dovecot the IMAP tests are skipped with the reason; under CI=true they fail instead
(scripts/run_tests.py installs Debian's dovecot-imapd in CI).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from kefu.connectors.email import config
from tests.connectors.email.dovecot import Dovecot, missing


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    problem = missing()
    if problem is not None:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}:
            pytest.fail(f"CI=true and {problem}", pytrace=False)
        pytest.skip(problem)
    server = Dovecot.start()
    yield server
    server.stop()


@pytest.fixture
def forget_scheduled_ticks():
    """Remove the IMAP ticks a test scheduled on RQ (a database queue is rolled back or flushed
    with the test's data): a tick left behind would reschedule itself in any later worker."""
    yield
    from django.conf import settings

    if not settings.TASKS["default"]["BACKEND"].startswith("django_tasks_rq"):
        return
    import django_rq
    from django_tasks_rq import Job

    queue = django_rq.get_queue("default", job_class=Job)
    registry = queue.scheduled_job_registry
    for job_id in registry.get_job_ids():
        job = queue.fetch_job(job_id)
        if job is None or "poll_mail_tick" in (job.description or ""):
            registry.remove(job_id, delete_job=job is not None)


class Recorder:
    def __init__(self):
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server(inbox):
    """A real SMTP receiver (aiosmtpd) the inbox sends through; yields what it received."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    config.configure(inbox, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none")
    inbox.save()
    yield recorder
    controller.stop()
