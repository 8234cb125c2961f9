"""Fixtures for the email connector: a real IMAP server (dovecot), started once per session.

Without dovecot the IMAP tests are skipped with the reason; under CI=true they fail instead
(scripts/run_tests.py installs Debian's dovecot-imapd in CI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

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
