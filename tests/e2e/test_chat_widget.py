"""The chat widget in a real Chromium, on a plain shop page served from another origin, talking
to kefu's real ASGI server; the agent answers from the workspace in a second browser context."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kefu.accounts.models import Role
from kefu.connectors.chat import config
from kefu.conversations.models import InboxKind, InboxMembership
from tests.e2e.conftest import sign_in, watched_page
from tests.factories import AgentFactory, InboxFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "chat"
PASSWORD = "correct horse battery"
ANSWER_WITHIN_MS = 2000


def shop_page(kefu_url: str, widget_key: str) -> bytes:
    """What a storefront adds: one script tag, nothing else of kefu's."""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Tea shop</title>"
        "</head><body><h1>Tea shop</h1><p>Oolong, 100 g</p>"
        f"<script src='{kefu_url}/chat/widget.js' data-key='{widget_key}' async></script>"
        "</body></html>"
    ).encode()


@pytest.fixture
def shop(asgi_server, chat):
    """The shop's own web server, on another origin (localhost vs kefu's 127.0.0.1)."""
    page = shop_page(asgi_server.url, chat["key"])

    class Shop(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page if self.path == "/" else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", chat["shop_port"]), Shop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{chat['shop_port']}"
    server.shutdown()


@pytest.fixture
def chat(transactional_db):
    from tests.e2e.conftest import _free_port

    shop_port = _free_port()
    inbox = InboxFactory(name="Tea shop chat", kind=InboxKind.CHAT)
    config.configure(inbox, allowed_origins=[f"http://localhost:{shop_port}"])
    inbox.save()
    ada = AgentFactory(username="ada", display_name="Ada", role=Role.AGENT)
    InboxMembership.objects.create(inbox=inbox, agent=ada)
    return {"inbox": inbox, "key": config.settings_of(inbox).widget_key, "shop_port": shop_port}


def test_a_visitor_chats_the_agent_answers_live_and_history_survives_a_reload(
    asgi_server, chat, shop, browser
):
    agent_page = watched_page(browser)
    sign_in(agent_page, asgi_server.url, "ada", PASSWORD)

    visitor_context = browser.new_context(locale="en-US")
    visitor = visitor_context.new_page()
    problems: list[str] = []
    visitor.on("pageerror", lambda error: problems.append(str(error)))
    visitor.goto(shop)

    # Given the widget on the shop's page, when the visitor opens it, introduces themselves
    # and writes, then the agent's inbox shows the conversation live
    visitor.click("[data-kefu=launch]")
    visitor.fill("[data-kefu=prechat] input[name=name]", "Li Wei")
    visitor.click("[data-kefu=prechat] button")
    visitor.fill("[data-kefu=text]", "Is the oolong in stock?")
    visitor.press("[data-kefu=text]", "Enter")
    agent_page.wait_for_selector(".ws-row:has-text('Is the oolong in stock?')", timeout=2000)

    # When the agent opens it and answers, then the visitor sees the answer within 2 seconds
    agent_page.click(".ws-row:has-text('Is the oolong in stock?') a")
    agent_page.wait_for_selector(".ws-inbound:has-text('Is the oolong in stock?')")
    agent_page.fill("[data-composer-text]", "Yes, 40 packs left.")
    agent_page.click("[data-send]")
    visitor.wait_for_selector(
        "[data-kefu=log] .m.agent:has-text('Yes, 40 packs left.')", timeout=ANSWER_WITHIN_MS
    )

    # When the visitor reloads the page, then the conversation is still there
    visitor.reload()
    visitor.wait_for_selector("[data-kefu=log] .m.visitor:has-text('Is the oolong in stock?')")
    visitor.wait_for_selector("[data-kefu=log] .m.agent:has-text('Yes, 40 packs left.')")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    visitor.screenshot(path=str(ARTIFACTS / "widget.png"))
    assert problems == []
    assert agent_page.problems == []
    visitor_context.close()


def test_the_widget_speaks_arabic_right_to_left(asgi_server, chat, shop, browser):
    context = browser.new_context(locale="ar-SA")
    visitor = context.new_page()
    visitor.goto(shop)
    visitor.click("[data-kefu=launch]")
    visitor.wait_for_selector(".k[dir=rtl]")
    placeholder = visitor.get_attribute("[data-kefu=prechat] input[name=name]", "placeholder")
    assert placeholder and placeholder != "Your name"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    visitor.screenshot(path=str(ARTIFACTS / "widget-ar.png"))
    context.close()
