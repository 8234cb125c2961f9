"""Sign-in, sign-out, password change and the sign-in rate limit."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from kefu.accounts import ratelimit
from kefu.accounts.models import AuditLog
from tests.accounts_ui.conftest import PASSWORD
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def attempt(client: Client, username: str, password: str, address: str = "203.0.113.7"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


# --- sign-in and sign-out ----------------------------------------------------------------------


def test_the_sign_in_page_has_a_csrf_protected_form(client):
    response = client.get(LOGIN)
    assert response.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in response.content
    assert b'name="username"' in response.content and b'name="password"' in response.content


def test_right_password_signs_in_and_goes_to_next(client):
    agent = AgentFactory(username="wei")
    response = client.post(
        LOGIN, {"username": "wei", "password": PASSWORD, "next": "/accounts/preferences/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/preferences/"
    assert client.session["_auth_user_id"] == str(agent.pk)


def test_next_pointing_elsewhere_is_ignored(client):
    AgentFactory(username="wei")
    response = client.post(
        LOGIN, {"username": "wei", "password": PASSWORD, "next": "https://evil.example/"}
    )
    assert response["Location"] == settings.LOGIN_REDIRECT_URL


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(client):
    AgentFactory(username="wei")
    wrong_password = attempt(client, "wei", "nope")
    unknown_user = attempt(client, "nobody", "nope")
    for response in (wrong_password, unknown_user):
        assert response.status_code == 200
        assert b"Please enter a correct username and password" in response.content
    assert not signed_in(client)


def test_a_deactivated_agent_cannot_sign_in(client):
    AgentFactory(username="gone", is_active=False)
    assert attempt(client, "gone", PASSWORD).status_code == 200
    assert not signed_in(client)


def test_sign_out_needs_a_post_and_ends_the_session(client):
    client.force_login(AgentFactory())
    assert client.get("/accounts/logout/").status_code == 405
    assert signed_in(client)
    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == LOGIN
    assert not signed_in(client)


def test_the_session_cookie_is_http_only_and_lasts_a_working_day(client):
    AgentFactory(username="wei")
    response = attempt(client, "wei", PASSWORD)
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert int(cookie["max-age"]) == 12 * 3600


def test_sign_in_rotates_the_session_key(client):
    AgentFactory(username="wei")
    client.get(LOGIN)
    session = client.session
    session["before"] = 1
    session.save()
    before = session.session_key
    attempt(client, "wei", PASSWORD)
    assert client.session.session_key != before


def test_the_back_office_sign_in_is_the_same_rate_limited_page(client):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 200
    assert response.templates[0].name == "accounts/login.html"


def test_a_signed_in_non_staff_agent_sent_to_the_back_office_login_is_not_looped(client):
    client.force_login(AgentFactory())
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 200
    assert b"who may not open that page" in response.content


# --- password change ---------------------------------------------------------------------------


def test_password_change_keeps_this_session_ends_others_and_is_audited(client):
    agent = AgentFactory(username="wei")
    other = Client()
    other.force_login(agent)
    client.force_login(agent)
    response = client.post(
        "/accounts/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "a new long passphrase",
            "new_password2": "a new long passphrase",
        },
    )
    assert response.status_code == 302
    assert client.get("/accounts/preferences/").status_code == 200
    assert other.get("/accounts/preferences/").status_code == 302  # sent to sign in
    agent.refresh_from_db()
    assert agent.check_password("a new long passphrase")
    assert AuditLog.objects.filter(action="agent.password_changed", actor=agent).count() == 1


def test_password_change_needs_the_old_password_and_a_strong_new_one(client):
    agent = AgentFactory()
    client.force_login(agent)
    wrong_old = client.post(
        "/accounts/password/",
        {
            "old_password": "x",
            "new_password1": "a new long one!",
            "new_password2": "a new long one!",
        },
    )
    weak_new = client.post(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": "password", "new_password2": "password"},
    )
    assert wrong_old.status_code == 200 and weak_new.status_code == 200
    agent.refresh_from_db()
    assert agent.check_password(PASSWORD)
    assert not AuditLog.objects.filter(action="agent.password_changed").exists()


# --- rate limit --------------------------------------------------------------------------------


def test_the_sixth_failure_from_an_address_is_refused_even_with_the_right_password(client):
    AgentFactory(username="wei")
    for n in range(5):
        assert attempt(client, f"guess{n}", "nope").status_code == 200
    blocked = attempt(client, "wei", PASSWORD)
    assert blocked.status_code == 429
    assert b"Too many failed sign-in attempts" in blocked.content
    assert not signed_in(client)


def test_another_address_is_not_affected(client):
    AgentFactory(username="wei")
    for n in range(5):
        attempt(client, f"guess{n}", "nope", address="203.0.113.7")
    response = attempt(client, "wei", PASSWORD, address="198.51.100.20")
    assert response.status_code == 302
    assert signed_in(client)


def test_five_failures_for_one_username_block_it_from_every_address(client):
    AgentFactory(username="wei")
    for n in range(5):
        attempt(client, "wei", "nope", address=f"198.51.100.{n + 1}")
    assert attempt(client, "WEI", PASSWORD, address="192.0.2.99").status_code == 429
    assert not signed_in(client)
    AgentFactory(username="omar")
    assert attempt(client, "omar", PASSWORD, address="192.0.2.99").status_code == 302


def test_successful_sign_ins_do_not_count(client):
    AgentFactory(username="wei")
    for _ in range(6):
        assert attempt(client, "wei", PASSWORD).status_code == 302
        client.logout()


def test_the_window_slides_failures_age_out_one_by_one(client):
    if "DatabaseCache" not in settings.CACHES["ratelimit"]["BACKEND"]:
        pytest.skip("Redis expires keys on its own clock; the database cache reads ours")
    AgentFactory(username="wei")
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        for n in range(4):
            attempt(client, f"guess{n}", "nope")
        clock.shift(timedelta(minutes=2))
        attempt(client, "guess4", "nope")
        clock.shift(timedelta(minutes=2, seconds=59))
        assert attempt(client, "wei", PASSWORD).status_code == 429  # 4:59 after the first
        clock.shift(timedelta(seconds=2))
        # The first four failures have aged out; one remains: room for four more tries.
        assert attempt(client, "wei", PASSWORD).status_code == 302


def test_the_rate_limit_cache_is_shared_between_processes():
    """Not the per-process locmem cache: Redis, or the database table every worker reads."""
    backend = settings.CACHES["ratelimit"]["BACKEND"]
    assert backend in {
        "django.core.cache.backends.db.DatabaseCache",
        "django.core.cache.backends.redis.RedisCache",
    }


@pytest.mark.django_db(transaction=True)
def test_failures_counted_by_another_process_block_this_one(client):
    """Another server process (a second WSGI worker) records the failures; this one refuses."""
    AgentFactory(username="wei")
    database = settings.DATABASES["default"]
    if connection.vendor == "sqlite":
        url = f"sqlite:///{database['NAME']}"
    else:
        url = (
            f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
            f"{database['NAME']}"
        )
    script = (
        "import django; django.setup()\n"
        "from django.test import RequestFactory\n"
        "from kefu.accounts import ratelimit\n"
        "request = RequestFactory().post('/', REMOTE_ADDR='203.0.113.7')\n"
        "for n in range(5):\n"
        "    ratelimit.record_failure(ratelimit.login_limit(),"
        " ratelimit.login_subjects(request, f'guess{n}'))\n"
    )
    env = {**os.environ, "KEFU_DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "kefu.config.settings"}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    assert attempt(client, "wei", PASSWORD).status_code == 429
    ratelimit.forget_all()


def test_client_address_ignores_forwarded_headers_unless_proxies_are_trusted(rf, settings):
    request = rf.get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.9")
    settings.KEFU_TRUSTED_PROXIES = 0
    assert ratelimit.client_address(request) == "10.0.0.5"
    settings.KEFU_TRUSTED_PROXIES = 1
    # The nearest proxy appended the address it saw; "1.2.3.4" is the client's to forge.
    assert ratelimit.client_address(request) == "198.51.100.9"


def test_an_ipv6_client_counts_as_its_slash_64(rf):
    one = rf.get("/", REMOTE_ADDR="2001:db8:1:2:aaaa::1")
    other = rf.get("/", REMOTE_ADDR="2001:db8:1:2:bbbb::2")
    mapped = rf.get("/", REMOTE_ADDR="::ffff:192.0.2.1")
    assert ratelimit.client_address(one) == ratelimit.client_address(other) == "2001:db8:1:2::/64"
    assert ratelimit.client_address(mapped) == "192.0.2.1"


def test_wrong_current_passwords_count_against_the_sign_in_limit(client):
    agent = AgentFactory(username="wei")
    client.force_login(agent)
    change = {"new_password1": "a new long passphrase", "new_password2": "a new long passphrase"}
    for _ in range(5):
        response = client.post("/accounts/password/", {"old_password": "guess", **change})
        assert response.status_code == 200
    blocked = client.post("/accounts/password/", {"old_password": PASSWORD, **change})
    assert blocked.status_code == 429
    agent.refresh_from_db()
    assert agent.check_password(PASSWORD)
    assert attempt(Client(), "wei", PASSWORD, address="192.0.2.50").status_code == 429
