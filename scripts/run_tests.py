#!/usr/bin/env python3
"""Everything `make test` (and so `.ci/run`) checks, in order:

1. lint: ``ruff check``, ``ruff format --check``, ``mypy kefu``;
2. the suite on the embedded default: SQLite, the database task worker, in-memory channel layer;
3. the suite again at scale: PostgreSQL + Redis (tasks on RQ, channel layer and cache on Redis).

Services: before the scale pass PostgreSQL and Redis are probed; tests marked ``browser`` need
Chromium at /usr/bin/chromium, the email connector's IMAP tests dovecot at /usr/sbin/dovecot.
With ``CI=true`` a missing service fails the run (Chromium and dovecot-imapd are installed from
Debian first when running as root); otherwise the part that needs it is skipped with a message
saying so.

Environment:
  KEFU_TEST_DATABASE_URL  PostgreSQL for the scale pass (postgres://postgres@127.0.0.1:5432/kefu;
                          pytest creates and drops test_<name>)
  KEFU_TEST_REDIS_URL     Redis for the scale pass (redis://127.0.0.1:6379/15: a database of its
                          own, since tests empty queues and caches)
  KEFU_VAR_DIR            base directory for the passes' var dirs (default var/test)
Arguments: ``--only lint|embedded|scale`` (repeatable); anything after ``--`` goes to pytest.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("KEFU_CHROMIUM", "/usr/bin/chromium")
DOVECOT = os.environ.get("KEFU_DOVECOT", "/usr/sbin/dovecot")
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/kefu"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
# Variables a developer may have exported for `kefu run`; each pass sets its own.
PASS_VARIABLES = ("KEFU_DATABASE_URL", "KEFU_REDIS_URL", "KEFU_TASKS_IMMEDIATE", "KEFU_VAR_DIR")
PYTEST_NO_TESTS = 5


@dataclass
class Step:
    name: str
    ok: bool
    detail: str
    seconds: float = 0.0


@dataclass
class Report:
    steps: list[Step] = field(default_factory=list)

    def add(self, name: str, ok: bool, detail: str, seconds: float = 0.0) -> None:
        self.steps.append(Step(name, ok, detail, seconds))
        banner(f"{name}: {'ok' if ok else 'FAILED'}, {detail}")

    def print(self) -> None:
        print("\n=== kefu test summary ===", flush=True)
        for step in self.steps:
            took = f" ({step.seconds:.0f}s)" if step.seconds else ""
            print(f"{'ok  ' if step.ok else 'FAIL'} {step.name}: {step.detail}{took}", flush=True)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def banner(text: str) -> None:
    print(f"\n--- {text}", flush=True)


def tool(name: str) -> str:
    """A tool from this interpreter's environment (the venv), else from PATH."""
    candidate = BIN / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


# --- lint --------------------------------------------------------------------------------------


def run_lint(report: Report) -> None:
    commands = [
        [tool("ruff"), "check", "."],
        [tool("ruff"), "format", "--check", "."],
        [tool("mypy"), "kefu"],
    ]
    started = time.monotonic()
    failed = []
    for command in commands:
        banner(" ".join(Path(command[0]).name if i == 0 else c for i, c in enumerate(command)))
        if subprocess.call(command, cwd=ROOT) != 0:
            failed.append(" ".join(command[1:2]) if "ruff" in command[0] else "mypy")
    took = time.monotonic() - started
    detail = "ruff check, ruff format --check, mypy kefu"
    report.add("lint", not failed, f"failed: {', '.join(failed)}" if failed else detail, took)


# --- services ----------------------------------------------------------------------------------


def postgres_problem(url: str) -> str | None:
    """None when the PostgreSQL server of ``url`` accepts a connection."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    parts = urlsplit(url)
    # The target database may not exist yet (pytest creates test_<name>); ask the server itself.
    maintenance = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    try:
        psycopg.connect(maintenance, connect_timeout=3).close()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
    return None


def redis_problem(url: str) -> str | None:
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


# Debian packages some tests need, each with the program that shows it is installed: Chromium for
# the browser tests, dovecot for the email connector's IMAP tests.
SYSTEM_PACKAGES = {"chromium": CHROMIUM, "dovecot-imapd": DOVECOT}


def ensure_system_packages(report: Report) -> None:
    """CI: the packages must be there (installed from Debian when root). Elsewhere: say which
    are not, and which tests are skipped for it."""
    missing = [name for name, path in SYSTEM_PACKAGES.items() if not os.access(path, os.X_OK)]
    for name, path in SYSTEM_PACKAGES.items():
        if name not in missing:
            report.add(name, True, f"found at {path}")
    if not missing:
        return
    if not in_ci():
        for name in missing:
            path = SYSTEM_PACKAGES[name]
            report.add(name, True, f"skipped: tests needing {path} (apt-get install {name})")
        return
    if os.geteuid() != 0:
        for name in missing:
            report.add(name, False, f"CI=true and {SYSTEM_PACKAGES[name]} missing; not root")
        return
    banner(f"CI: installing Debian's {', '.join(missing)} (apt-get)")
    started = time.monotonic()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.call(["apt-get", "update", "-q"], env=env)
    subprocess.call(["apt-get", "install", "-y", "-q", *missing], env=env)
    took = time.monotonic() - started
    for name in missing:
        path = SYSTEM_PACKAGES[name]
        installed = os.access(path, os.X_OK)
        detail = f"installed at {path}" if installed else f"apt-get install {name} failed"
        report.add(name, installed, detail, took)


# --- pytest passes -----------------------------------------------------------------------------

# pytest's last line: "12 passed, 3 skipped in 4.20s" (with or without ===== around it).
SUMMARY = re.compile(r"^=*\s*((?:\d+ \w+(?:, )?)+|no tests ran) in [\d.]+s")


def run_pytest(report: Report, name: str, env: dict[str, str], args: list[str]) -> None:
    banner(f"pytest, {name}")
    command = [sys.executable, "-m", "pytest", "-q", "--durations=10", *args]
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    summary = ""
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        matched = SUMMARY.match(line.strip())
        if matched:
            summary = matched.group(1)
    code = process.wait()
    took = time.monotonic() - started
    if code == PYTEST_NO_TESTS:
        report.add(name, True, "no tests collected", took)
    else:
        report.add(name, code == 0, summary or f"pytest exit code {code}", took)


def pass_env(var_dir: Path, **variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PASS_VARIABLES}
    var_dir.mkdir(parents=True, exist_ok=True)
    env.update(KEFU_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1", **variables)
    return env


def run_embedded(report: Report, var_base: Path, args: list[str], scale_follows: bool) -> None:
    env = pass_env(var_base / "embedded")
    if scale_follows:
        # PostgreSQL- and Redis-marked tests are left to the scale pass (see tests/conftest.py).
        env["KEFU_TEST_SCALE_RUN_FOLLOWS"] = "1"
    run_pytest(report, "embedded (SQLite, database tasks, in-memory layer)", env, args)


def run_scale(report: Report, var_base: Path, args: list[str]) -> None:
    database_url = os.environ.get("KEFU_TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("KEFU_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    name = "scale (PostgreSQL + Redis: RQ tasks, Redis layer and cache)"
    problems = []
    if problem := postgres_problem(database_url):
        problems.append(f"PostgreSQL not reachable at {database_url} ({problem})")
    if problem := redis_problem(redis_url):
        problems.append(f"Redis not reachable at {redis_url} ({problem})")
    if problems:
        if in_ci():
            report.add(name, False, "CI=true and " + "; ".join(problems))
        else:
            report.add(name, True, "skipped: " + "; ".join(problems))
        return
    env = pass_env(var_base / "scale", KEFU_DATABASE_URL=database_url, KEFU_REDIS_URL=redis_url)
    run_pytest(report, name, env, args)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=["lint", "embedded", "scale"])
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest")
    options = parser.parse_args(argv)
    parts = set(options.only or ["lint", "embedded", "scale"])
    var_base = Path(os.environ.get("KEFU_VAR_DIR") or ROOT / "var" / "test").resolve()
    print(f"kefu tests: {', '.join(sorted(parts))}; CI={'true' if in_ci() else 'false'}")

    report = Report()
    started = time.monotonic()
    if "lint" in parts:
        run_lint(report)
    if parts & {"embedded", "scale"}:
        ensure_system_packages(report)
    if "embedded" in parts:
        run_embedded(report, var_base, options.pytest_args, scale_follows="scale" in parts)
    if "scale" in parts:
        run_scale(report, var_base, options.pytest_args)
    report.print()
    verdict = "passed" if report.ok else "FAILED"
    print(f"kefu tests {verdict} in {time.monotonic() - started:.0f}s", flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
