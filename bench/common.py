"""Shared helpers for the benchmarks: start a kefu server, seed a token, describe the machine."""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DATA = ROOT.parent / "shared" / "data"


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    pg = "n/a"
    if shutil.which("psql"):
        pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {pg}"
    )


def load_average() -> str:
    """The 1-minute load average: above the core count, other work shared the machine."""
    return f"{os.getloadavg()[0]:.1f}"


def free_port(ports: range | None = None) -> int:
    """A free local port: the first free one in ``ports``, or any the OS picks."""
    for port in ports or [0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError(f"no free port in {ports}")


def port_range(spec: str) -> range:
    """``"18300-18399"`` -> range(18300, 18400)."""
    first, _, last = spec.partition("-")
    return range(int(first), int(last or first) + 1)


def kefu_env(var_dir: Path, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env["KEFU_VAR_DIR"] = str(var_dir)
    env["KEFU_LOG_LEVEL"] = "WARNING"
    if database_url:
        env["KEFU_DATABASE_URL"] = database_url
    return env


def run_kefu(env: dict[str, str], *args: str, capture: bool = False) -> str:
    result = subprocess.run(
        [str(BIN / "kefu"), *args], env=env, check=True, capture_output=True, text=True
    )
    return result.stdout.strip() if capture else ""


def recreate_postgres(url: str) -> None:
    """Drop and create the database named in ``url`` (postgres://user@host:port/name)."""
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@contextmanager
def kefu_server(
    env: dict[str, str],
    *,
    workers: int = 2,
    threads: int = 1,
    interface: str = "wsgi",
    ports: range | None = None,
):  # type: ignore[no-untyped-def]
    """Run `kefu serve` on a free port (from ``ports`` if given); yields the base URL.

    The whole process group is terminated afterwards.
    """
    port = free_port(ports)
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [str(BIN / "kefu"), "serve", "--interface", interface, "--workers", str(workers),
             "--threads", str(threads), "--port", str(port)],
            env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(base + "/healthz")
            yield base
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
            log.seek(0)
            problems = [line for line in log if "WARNING" in line or "ERROR" in line]
            if problems:
                print(f"server log: {len(problems)} warnings/errors; last:", *problems[-5:])


def temp_var_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def run_child(script: str, engine: str, postgres_url: str, args: list[str], *, prefix: str) -> dict:
    """Run ``script`` with ``args`` in a fresh kefu (its own var dir; for "postgres" a freshly
    made database at ``postgres_url``) and return the JSON its last output line holds."""
    with tempfile.TemporaryDirectory(prefix=prefix) as var_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
        env.update(
            KEFU_VAR_DIR=var_dir,
            KEFU_LOG_LEVEL="WARNING",
            DJANGO_SETTINGS_MODULE="kefu.config.settings",
        )
        if engine == "postgres":
            recreate_postgres(postgres_url)
            env["KEFU_DATABASE_URL"] = postgres_url
        out = subprocess.run(
            [sys.executable, script, *args],
            env=env,
            cwd=Path(script).resolve().parent.parent,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout
        return json.loads(out.strip().splitlines()[-1])
