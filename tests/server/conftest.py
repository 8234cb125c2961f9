"""Real kefu server processes on a database of their own (never pytest's test database).

On the embedded run that is a fresh SQLite file in a temporary var dir; on the scale run
(KEFU_DATABASE_URL=postgres://...) a fresh PostgreSQL database, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
# Ports for test servers; override when the range is taken on a machine.
PORT_RANGE = os.environ.get("KEFU_TEST_PORTS", "18100-18199")
START_TIMEOUT = 90.0


def kefu_command() -> list[str]:
    """The installed ``kefu`` console script, else the same entry point through Python."""
    script = Path(sys.executable).parent / "kefu"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "kefu.config.cli"]


def free_port() -> int:
    low, high = (int(part) for part in PORT_RANGE.split("-"))
    ports = list(range(low, high + 1))
    random.shuffle(ports)
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE}")


def _postgres_admin(url: str):  # type: ignore[no-untyped-def]
    import psycopg

    parts = urlsplit(url)
    maintenance = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    return psycopg.connect(maintenance, autocommit=True)


@pytest.fixture
def site_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for kefu processes with a fresh, migrated database of their own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        KEFU_VAR_DIR=str(tmp_path / "var"),
        KEFU_LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="kefu.config.settings",
        PYTHONPATH=str(ROOT),
    )
    base_url = os.environ.get("KEFU_DATABASE_URL", "")
    database = None
    if base_url.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(base_url)
        database = f"{parts.path.lstrip('/') or 'kefu'}_server_{uuid.uuid4().hex[:8]}"
        with _postgres_admin(base_url) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        env["KEFU_DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{database}"))
    else:
        env.pop("KEFU_DATABASE_URL", None)
    run_kefu(env, "migrate", "--no-input", "-v", "0")
    yield env
    if database is not None:
        with _postgres_admin(base_url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def run_kefu(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [*kefu_command(), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"kefu {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def run_site(env: dict[str, str], *args: str) -> object:
    done = subprocess.run(
        [sys.executable, "-m", "tests.server.site", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"site {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@dataclass
class Server:
    """A kefu process group (the server and any workers it forks)."""

    args: list[str]
    env: dict[str, str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [*kefu_command(), *self.args, "--port", str(self.port)],
            env=self.env,
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill -9 reaches every worker
        )
        handle.close()
        self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"kefu exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"kefu did not answer /healthz within {START_TIMEOUT}s:\n{self.output()}")

    def kill_hard(self) -> None:
        """kill -9 the whole process group, and wait until the port is free again."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._wait_group_gone()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        """Ask the server to stop; returns its exit code (None if it had to be killed)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill_hard()
                return None
        return self.process.returncode

    def _wait_group_gone(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill_hard()
        elif self.process is not None:
            # Whatever the server forked and left behind goes with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:] if self.log.exists() else ""


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator:
    started: list[Server] = []

    def make(env: dict[str, str], *args: str, port: int | None = None) -> Server:
        log = tmp_path / f"server-{len(started)}.log"
        server = Server(list(args), env, port or free_port(), log)
        started.append(server)
        return server

    yield make
    for server in started:
        server.cleanup()
