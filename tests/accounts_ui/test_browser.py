"""In a real Chromium: the account pages work under the strict policy, Arabic lays out right to
left, and an email shown in a sandboxed srcdoc frame inherits the policy (no script, no remote
image, no inline style), which is what docs/security.md promises the workspace."""

from __future__ import annotations

import html
import http.server
import threading
from pathlib import Path

import pytest
from django.test import RequestFactory

from kefu.accounts.models import Role
from kefu.core.csp import content_security_policy
from tests.conftest import CHROMIUM_PATH
from tests.factories import AgentFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "accounts_ui"


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Without this flag Chromium's Local Network Access would block the email's requests to
        # the loopback tracker by itself, and the policy would be tested against nothing.
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM_PATH, args=["--disable-features=LocalNetworkAccessChecks"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    page.problems = []  # console errors and CSP violations, asserted empty by the tests
    page.on(
        "console",
        lambda message: page.problems.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("dialog", lambda dialog: page.problems.append(f"dialog: {dialog.message}"))
    yield page
    page.close()


@pytest.fixture
def ada(transactional_db):
    # Made before Playwright starts: its event loop makes Django refuse database calls.
    return AgentFactory(username="ada", role=Role.ADMIN, is_staff=True, display_name="Ada")


@pytest.fixture
def tracker():
    """A server standing for an email's remote image host; records every hit."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()


def test_sign_in_switch_to_arabic_and_administer_under_the_policy(ada, live_server, page):
    page.route("**/favicon.ico", lambda route: route.fulfill(status=204))

    page.goto(f"{live_server.url}/accounts/login/?next=/accounts/preferences/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", "correct horse battery")
    page.click("form.stacked button[type=submit]")
    page.wait_for_url("**/accounts/preferences/")

    page.select_option("#id_language", "ar")
    page.select_option("#id_timezone", "Asia/Riyadh")
    page.click("form.stacked button[type=submit]")
    page.wait_for_load_state()
    assert page.get_attribute("html", "dir") == "rtl"
    assert page.get_attribute("html", "lang") == "ar"
    assert page.text_content("h1") == "التفضيلات"

    page.goto(f"{live_server.url}/accounts/agents/")
    assert page.text_content("h1").strip() == "موظفو الدعم"
    # Right to left for real: the heading sits at the right edge, the button at the left.
    heading, button = page.locator("h1").bounding_box(), page.locator("a.button").bounding_box()
    assert heading["x"] > button["x"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "agents-ar.png"), full_page=True)
    assert page.problems == []


def show_email(browser, email: str, policy: str | None) -> tuple[list[str], str]:
    """Open a page holding ``email`` in a sandboxed srcdoc frame, served with ``policy``;
    returns what the page said through alert() and the computed colour of #styled."""
    frame = f'<iframe id=email sandbox="allow-popups" srcdoc="{html.escape(email)}"></iframe>'
    body = f"<!DOCTYPE html><html><body>{frame}</body></html>"
    headers = {"Content-Security-Policy": policy} if policy else {}
    page = browser.new_page()
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    # Fulfilled by Playwright (nothing listens on port 9); another origin than the tracker's.
    page.route(
        "http://localhost:9/",
        lambda route: route.fulfill(body=body, content_type="text/html", headers=headers),
    )
    page.goto("http://localhost:9/")
    page.evaluate("window.addEventListener('message', e => alert(e.data))")
    page.frame_locator("#email").locator("#styled").wait_for()
    page.wait_for_timeout(500)
    color = (
        page.frame_locator("#email").locator("#styled").evaluate("e => getComputedStyle(e).color")
    )
    page.close()
    return alerts, color


def test_an_email_in_a_srcdoc_frame_inherits_the_policy(browser, tracker):
    """Served with kefu's own header; the frame holds what a hostile email could carry."""
    host, hits = tracker
    email = (
        "<p id=styled style='color: rgb(255, 0, 0)'>Hello</p>"
        f"<img src='{host}/track.png'>"
        "<script>parent.postMessage('script ran', '*')</script>"
        "<img src=x onerror=\"parent.postMessage('handler ran', '*')\">"
    )
    policy = content_security_policy(RequestFactory().get("/"))

    alerts, color = show_email(browser, email, policy)

    assert color != "rgb(255, 0, 0)"  # inline style refused (inherited style-src 'self')
    assert hits == []  # remote image never fetched (inherited img-src)
    assert alerts == []  # no script ran: the sandbox has no allow-scripts

    # Control: without kefu's policy the same frame fetches the image and applies the style.
    _, color = show_email(browser, email, None)
    assert color == "rgb(255, 0, 0)"
    assert hits == ["/track.png"]
