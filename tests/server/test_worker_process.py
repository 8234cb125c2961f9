"""`kefu worker` as deployed: a separate process delivering what the web process queued."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.server.conftest import ROOT, kefu_command, run_site

pytestmark = pytest.mark.server


def test_kefu_worker_delivers_a_queued_reply_and_stops_on_sigterm(site_env, tmp_path):
    # Given a reply queued by another process (database task, or RQ job on the scale run)
    queued = run_site(site_env, "reply")
    assert isinstance(queued, dict)
    message_id = str(queued["message_id"])
    assert run_site(site_env, "status", message_id) == {"delivery_status": "queued"}

    # When `kefu worker` runs
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [*kefu_command(), "worker"],
        env=site_env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # Then it delivers the reply
        deadline = time.monotonic() + 60
        status = run_site(site_env, "status", message_id)
        while status != {"delivery_status": "sent"} and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(0.2)
            status = run_site(site_env, "status", message_id)
        assert status == {"delivery_status": "sent"}, (tmp_path / "worker.log").read_text()

        # ...and stops cleanly when asked to
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, (tmp_path / "worker.log").read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        log.close()
