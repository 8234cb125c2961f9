"""`kefu` on a fresh clone: its help, `kefu run --demo`, `kefu token`, `kefu demo`, real HTTP."""

from __future__ import annotations

import signal
import socket
import time

import httpx
import pytest

from kefu.core.demo import DEMO_LOGINS
from tests.cli.conftest import free_port, kefu


def test_kefu_alone_shows_the_kefu_commands_before_djangos(fresh_env):
    # When a person types `kefu` with nothing else
    done = kefu(fresh_env)

    # Then the kefu commands come first, with what they do, and Django's follow
    assert done.returncode == 0, done.stderr
    text = done.stdout
    for expected in (
        "run [--demo]",
        "demo [--force]",
        "token create --user NAME",
        "serve --interface wsgi|asgi",
        "worker",
        "createsuperuser",
        "kefu help --all",
    ):
        assert expected in text
    assert text.index("Start here") < text.index("At scale") < text.index("Administration")
    assert kefu(fresh_env, "help").stdout == text


def test_kefu_help_all_lists_every_command(fresh_env):
    done = kefu(fresh_env, "help", "--all")

    assert done.returncode == 0, done.stderr
    core = done.stdout.split("[core]")[1].split("[")[0].split()
    assert core == ["configure_channel", "demo", "run", "serve", "token", "worker"]
    assert "migrate" in done.stdout


@pytest.mark.server
def test_run_demo_on_a_fresh_clone_serves_pages_and_the_api_with_a_cli_token(fresh_env, start_kefu):
    # Given a fresh clone (no database yet), when a person runs `kefu run --demo`
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_kefu(fresh_env, "run", "--demo", "--port", str(port))
    server.wait_for(f"{base}/healthz")

    # Then it printed where it runs and the demo logins
    output = server.output()
    assert f"kefu is running at {base}" in output
    for username, password, _ in DEMO_LOGINS:
        assert f"{username:<6} / {password}" in output

    # And "/" leads to a sign-in page where a demo login signs in and reaches the back office
    with httpx.Client(base_url=base, follow_redirects=True, timeout=30) as browser:
        sign_in = browser.get("/")
        assert sign_in.status_code == 200
        assert 'name="password"' in sign_in.text
        signed_in = browser.post(
            str(sign_in.url),
            data={
                "username": "admin",
                "password": DEMO_LOGINS[0][1],
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            },
            headers={"Referer": str(sign_in.url)},
        )
        assert signed_in.status_code == 200
        assert signed_in.url.path != sign_in.url.path, "still on the sign-in page"
        back_office = browser.get("/admin/")
        assert back_office.status_code == 200
        assert back_office.url.path == "/admin/"

    # And a token from `kefu token create` works with the API
    created = kefu(fresh_env, "token", "create", "--user", "wei")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("kefu_")
    assert "\n" not in token
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=auth, timeout=30) as api:
        inboxes = api.get("/api/v1/inboxes").json()
        visible = {inbox["id"] for inbox in inboxes}
        # wei works email, marketplace and API (team) plus chat and WhatsApp (direct); not Telegram
        assert sorted(inbox["kind"] for inbox in inboxes) == sorted(
            ["email", "marketplace", "api", "chat", "whatsapp"]
        )
        page = api.get("/api/v1/conversations", params={"limit": 50})
        assert page.status_code == 200
        body = page.json()
        assert len(body["items"]) == 50
        assert {item["inbox_id"] for item in body["items"]} <= visible
        assert body["next_cursor"]

        # And a message submitted to the API inbox lands in a conversation that lists it
        api_inbox = next(inbox["id"] for inbox in inboxes if inbox["kind"] == "api")
        submitted = api.post(
            "/api/v1/messages",
            json={
                "inbox_id": api_inbox,
                "external_id": "cli-test-1",
                "customer": {"name": "Ana", "email": "ana@example.com"},
                "subject": "Order #1042",
                "text": "Where is my order #1042?",
            },
        )
        assert submitted.status_code == 202, submitted.text
        conversation_id = submitted.json()["conversation_id"]
        detail = api.get(f"/api/v1/conversations/{conversation_id}").json()
        assert detail["messages"][-1]["text"] == "Where is my order #1042?"

        # And a reply to it is delivered by the background worker: the one inside `kefu run`,
        # or with Redis (the scale pass) a `kefu worker` beside it, as the banner says
        if fresh_env.get("KEFU_REDIS_URL"):
            assert "run `kefu worker` beside this process" in output
            start_kefu(fresh_env, "worker")
        reply = api.post(
            f"/api/v1/conversations/{conversation_id}/messages",
            json={"kind": "reply", "text": "It arrives on Friday."},
        )
        assert reply.status_code == 201, reply.text
        assert _delivery_status(api, conversation_id, reply.json()["id"]) == "sent"

    # And without the token the API says so
    assert httpx.get(f"{base}/api/v1/conversations", timeout=30).status_code == 401

    # And `kefu demo` refuses to seed the same, non-empty database again
    again = kefu(fresh_env, "demo")
    assert again.returncode == 1
    assert "already has data" in again.stderr

    # When it is stopped with Ctrl+C, it stops cleanly
    code = server.stop(signal.SIGINT)
    assert code in (0, -signal.SIGINT), server.output()
    assert "Traceback" not in server.output()


def _delivery_status(api: httpx.Client, conversation_id: int, message_id: int) -> str:
    """The message's delivery status once it left "queued"/"sending" (or after two minutes)."""
    deadline = time.monotonic() + 120
    while True:
        messages = api.get(f"/api/v1/conversations/{conversation_id}").json()["messages"]
        status = next(m["delivery_status"] for m in messages if m["id"] == message_id)
        if status not in ("queued", "sending") or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def test_run_refuses_a_port_in_use_before_touching_the_database(fresh_env):
    # Given another process listening on the port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]

        # When `kefu run` is started on it
        done = kefu(fresh_env, "run", "--demo", "--port", str(port))

    # Then it says so and stops before migrating (let alone seeding) the database
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    unapplied = kefu(fresh_env, "migrate", "--check")
    assert unapplied.returncode == 1


def test_token_commands_create_list_and_revoke(fresh_env):
    # Given a migrated database with one login
    assert kefu(fresh_env, "migrate", "--no-input", "-v", "0").returncode == 0
    env = {**fresh_env, "DJANGO_SUPERUSER_PASSWORD": "a long password 2026"}
    made = kefu(env, "createsuperuser", "--no-input", "--username", "boss", "--email", "b@x.test")
    assert made.returncode == 0, made.stderr

    # When a token is created for someone who does not exist, nothing is printed but the error
    missing = kefu(fresh_env, "token", "create", "--user", "nobody")
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert "no active user named 'nobody'" in missing.stderr

    # When one is created for the login, list shows it (never the secret), revoke ends it
    token = kefu(fresh_env, "token", "create", "--user", "boss", "--name", "crm").stdout.strip()
    listed = kefu(fresh_env, "token", "list").stdout
    assert token[:12] in listed
    assert token not in listed
    assert "crm" in listed
    assert "active" in listed
    revoked = kefu(fresh_env, "token", "revoke", token[:12])
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in kefu(fresh_env, "token", "list", "--user", "boss").stdout
    again = kefu(fresh_env, "token", "revoke", token[:12])
    assert again.returncode == 1
    assert "no active token" in again.stderr


def test_demo_refuses_a_database_with_data_and_stores_nothing(fresh_env):
    # Given a database with an admin login only
    assert kefu(fresh_env, "migrate", "--no-input", "-v", "0").returncode == 0
    env = {**fresh_env, "DJANGO_SUPERUSER_PASSWORD": "a long password 2026"}
    made = kefu(env, "createsuperuser", "--no-input", "--username", "boss", "--email", "b@x.test")
    assert made.returncode == 0, made.stderr

    # When `kefu demo` runs without --force
    done = kefu(fresh_env, "demo")

    # Then it refuses and adds nothing
    assert done.returncode == 1
    assert "--force" in done.stderr
    count = kefu(
        fresh_env,
        "shell",
        "-c",
        "from kefu.conversations.models import Conversation, Inbox; "
        "print(Conversation.objects.count(), Inbox.objects.count())",
    )
    assert count.stdout.split()[-2:] == ["0", "0"]
