from __future__ import annotations

import pytest

from kefu.accounts import ratelimit
from kefu.accounts.models import Role
from tests.factories import AgentFactory

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _fresh_rate_limit(db):
    """The rate-limit cache is a table (or Redis) outside the test transaction: empty it."""
    ratelimit.forget_all()
    yield
    ratelimit.forget_all()


@pytest.fixture
def admin(db):
    return AgentFactory(username="ada", role=Role.ADMIN, is_staff=True)


@pytest.fixture
def lead(db):
    return AgentFactory(username="lee", role=Role.LEAD)


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client
