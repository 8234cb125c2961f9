from __future__ import annotations

import functools
import os

import pytest

from kefu.accounts.actions import create_token
from kefu.conversations.models import InboxMembership
from tests.factories import AgentFactory, InboxFactory


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Argon2 costs about half a second per agent the factories create; tests need no strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def inbox(db):
    return InboxFactory()


@pytest.fixture
def agent(db, inbox):
    """An agent who is a member of ``inbox``."""
    person = AgentFactory()
    InboxMembership.objects.create(inbox=inbox, agent=person)
    return person


@pytest.fixture
def outsider(db):
    """An agent with no inbox at all."""
    return AgentFactory()


@pytest.fixture
def api_token(agent):
    return create_token(user=agent, name="test")[1]


@pytest.fixture
def api(client, api_token):
    """A Django test client sending the agent's bearer token."""

    class Api:
        def __init__(self, token: str) -> None:
            self.headers = {"Authorization": f"Bearer {token}"}

        def get(self, path, **params):
            return client.get(path, params, headers=self.headers)

        def post(self, path, body):
            return client.post(path, body, content_type="application/json", headers=self.headers)

        def patch(self, path, body):
            return client.patch(path, body, content_type="application/json", headers=self.headers)

    return Api(api_token)


# --- Services: tests marked postgres / redis / browser need the real thing --------------------
#
# When the service is missing, the test fails under CI=true (CI must run everything) and is
# skipped with the reason otherwise. scripts/run_tests.py runs the suite on SQLite first with
# KEFU_TEST_SCALE_RUN_FOLLOWS=1: PostgreSQL and Redis tests are then skipped there because the
# PostgreSQL + Redis pass that follows runs them.

SERVICE_MARKERS = ("postgres", "redis", "browser")
CHROMIUM_PATH = os.environ.get("KEFU_CHROMIUM", "/usr/bin/chromium")


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@functools.cache
def service_problem(service: str) -> tuple[str, bool] | None:
    """None when ``service`` is usable; else (reason, whether it is configured for this run)."""
    from django.conf import settings

    if service == "postgres":
        if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
            return None
        return "needs PostgreSQL; this run uses SQLite (set KEFU_DATABASE_URL=postgres://…)", False
    if service == "redis":
        if not settings.REDIS_URL:
            return "needs Redis: KEFU_REDIS_URL is not set", False
        try:
            import redis

            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
        except Exception as exc:
            return f"Redis not reachable at {settings.REDIS_URL}: {exc}", True
        return None
    if service == "browser":
        if os.access(CHROMIUM_PATH, os.X_OK):
            return None
        return f"Chromium not found at {CHROMIUM_PATH} (apt-get install chromium)", True
    raise ValueError(service)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for service in SERVICE_MARKERS:
        if item.get_closest_marker(service) is None:
            continue
        problem = service_problem(service)
        if problem is None:
            continue
        reason, configured = problem
        if not configured and _truthy("KEFU_TEST_SCALE_RUN_FOLLOWS"):
            pytest.skip(f"{reason}; runs in the PostgreSQL + Redis pass")
        if _truthy("CI"):
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)


# --- search: index right after commit, in the test's own thread ----------------------------


@pytest.fixture(autouse=True, scope="session")
def _pokes_enqueue_at_once():
    """Drain pokes enqueue from a background thread in production; in tests at once, in the
    poking thread, so no thread writes to the test database after the test that poked."""
    from kefu.core import drains

    drains.IN_BACKGROUND = False


@pytest.fixture(autouse=True, scope="session")
def _search_indexes_at_once():
    """kefu.search defers indexing to a background thread in production; in tests it indexes at
    once, so no thread touches the test database after (or outside) the test that wrote."""
    from kefu.search import index

    index.INDEX_DELAY = 0
