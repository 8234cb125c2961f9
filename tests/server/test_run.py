"""`kefu run` as a user starts it: one process, migrates, serves, stops cleanly."""

from __future__ import annotations

import signal

import httpx
import pytest

pytestmark = pytest.mark.server


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "term"])
def test_kefu_run_serves_healthz_and_stops_cleanly(site_env, make_server, stop_signal):
    # Given `kefu run` on a fresh database
    server = make_server(site_env, "run").start()

    # Then it answers /healthz and tells the user where it runs
    health = httpx.get(server.url + "/healthz", timeout=10)
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}

    # When it is asked to stop, it shuts down without an error and frees its port. (uvicorn
    # re-raises the signal after a graceful shutdown, so "terminated by SIGTERM" is clean too.)
    code = server.stop(stop_signal)
    assert code in (0, -stop_signal), server.output()
    assert "Traceback" not in server.output()
    assert f"kefu is running at {server.url}" in server.output()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/healthz", timeout=2)
