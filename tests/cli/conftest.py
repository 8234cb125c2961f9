"""The ``kefu`` command as a person runs it: subprocesses on a data directory of their own.

Each test gets a fresh, empty ``KEFU_VAR_DIR`` (a fresh clone). With KEFU_DATABASE_URL pointing
at PostgreSQL (the scale pass) it also gets a fresh PostgreSQL database, dropped afterwards:
never pytest's test database, never a database another test uses.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
# Ports for the servers these tests start; override when the range is taken on a machine.
PORT_RANGE = os.environ.get("KEFU_TEST_CLI_PORTS", "18400-18499")
START_TIMEOUT = 120.0


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
def fresh_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for ``kefu`` processes: an empty var dir (and database) of their own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        KEFU_VAR_DIR=str(tmp_path / "var"),
        KEFU_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the kefu command sets its own
    base_url = os.environ.get("KEFU_DATABASE_URL", "")
    database = None
    if base_url.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(base_url)
        database = f"{parts.path.lstrip('/') or 'kefu'}_cli_{uuid.uuid4().hex[:8]}"
        with _postgres_admin(base_url) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        env["KEFU_DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{database}"))
    else:
        env.pop("KEFU_DATABASE_URL", None)
    yield env
    if database is not None:
        with _postgres_admin(base_url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def kefu(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``kefu ARGS`` to completion; the caller checks the return code."""
    return subprocess.run(
        [*kefu_command(), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class Running:
    """A long-running ``kefu`` process (its own process group) with its output in a file."""

    args: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Running:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*kefu_command(), *self.args],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_for(self, url: str) -> None:
        """Until ``url`` answers 200 (the server is up), or fail with the output so far."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"kefu exited with {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        pytest.fail(f"{url} did not answer within {START_TIMEOUT}s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int | None:
        """Ask the process to stop; its exit code, or None when it had to be killed."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.process.returncode

    def kill(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def start_kefu(tmp_path: Path) -> Iterator:
    """``start_kefu(env, *args)`` starts ``kefu ARGS`` in the background; stopped after the test."""
    started: list[Running] = []

    def start(env: dict[str, str], *args: str) -> Running:
        running = Running(list(args), env, tmp_path / f"kefu-{len(started)}.log").start()
        started.append(running)
        return running

    yield start
    for running in started:
        if running.process is not None and running.process.poll() is None:
            running.kill()
        elif running.process is not None:
            # Whatever it forked and left behind goes with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(running.process.pid, signal.SIGKILL)
