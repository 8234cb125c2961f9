"""The workspace in a real Chromium against a real ASGI server (HTTP and websockets)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from kefu.accounts.actions import create_token
from kefu.accounts.models import Role
from kefu.conversations.models import InboxMembership
from tests.e2e.conftest import sign_in, watched_page
from tests.factories import AgentFactory, InboxFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "workspace"
PASSWORD = "correct horse battery"
LIVE_WITHIN_MS = 2000


@pytest.fixture
def team(transactional_db):
    """Two agents of one API inbox, and an API token of the first (made before Playwright
    starts: its event loop makes Django refuse database calls in this thread)."""
    inbox = InboxFactory(name="Web shop API")
    ada = AgentFactory(username="ada", display_name="Ada", role=Role.AGENT)
    bea = AgentFactory(username="bea", display_name="Bea", role=Role.AGENT)
    for person in (ada, bea):
        InboxMembership.objects.create(inbox=inbox, agent=person)
    token = create_token(user=ada, name="e2e")[1]
    return {"inbox": inbox, "ada": ada, "bea": bea, "token": token}


def submit(server, team, external_id: str, text: str, html: str = "") -> dict:
    body = {
        "inbox_id": team["inbox"].pk,
        "external_id": external_id,
        "customer": {"name": "Ana", "email": "ana@example.com"},
        "text": text,
    }
    if html:
        body["html"] = html
    response = httpx.post(
        f"{server.url}/api/v1/messages",
        json=body,
        headers={"Authorization": f"Bearer {team['token']}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    return response.json()


def quiet(page):
    page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    return page


def test_an_api_message_appears_live_and_the_reply_reaches_the_api(asgi_server, team, browser):
    page = quiet(watched_page(browser))
    sign_in(page, asgi_server.url, "ada", PASSWORD)

    # When a message arrives through the API, then the open inbox shows it without a reload
    result = submit(asgi_server, team, "e2e-1", "Where is my parcel? Order 1042")
    row = f".ws-row[data-conversation='{result['conversation_id']}']"
    page.wait_for_selector(row, timeout=LIVE_WITHIN_MS)

    # When the agent opens it and replies, then the reply is on the timeline and in the API
    page.click(f"{row} a")
    page.fill("[data-composer-text]", "It left our warehouse today.")
    page.click("[data-send]")
    page.wait_for_selector(".ws-outbound:has-text('It left our warehouse today.')")
    detail = httpx.get(
        f"{asgi_server.url}/api/v1/conversations/{result['conversation_id']}",
        headers={"Authorization": f"Bearer {team['token']}"},
    ).json()
    assert [m["text"] for m in detail["messages"] if m["direction"] == "outbound"] == [
        "It left our warehouse today."
    ]
    assert page.problems == []


def test_a_colleague_sees_an_assignment_live(asgi_server, team, browser):
    conversation_id = submit(asgi_server, team, "e2e-2", "Refund please")["conversation_id"]
    ada, bea = quiet(watched_page(browser)), quiet(watched_page(browser))
    sign_in(bea, asgi_server.url, "bea", PASSWORD)
    bea.goto(f"{asgi_server.url}/?view=mine")
    bea.wait_for_selector("html[data-live=on]")
    assert bea.locator(f".ws-row[data-conversation='{conversation_id}']").count() == 0

    sign_in(ada, asgi_server.url, "ada", PASSWORD)
    ada.goto(f"{asgi_server.url}/c/{conversation_id}/")
    ada.select_option("[data-assignee]", str(team["bea"].pk))
    ada.click("[data-assign-form] button[type=submit]:not([data-assign-me])")

    bea.wait_for_selector(f".ws-row[data-conversation='{conversation_id}']", timeout=LIVE_WITHIN_MS)
    assert ada.problems == [] and bea.problems == []


@pytest.fixture
def by_mail_too(team):
    """The same customer also wrote by email (made before the browser starts)."""
    from kefu.conversations.inbound import InboundMessage
    from kefu.conversations.pipeline import receive_message

    email = InboxFactory(name="Mail", kind="email")
    InboxMembership.objects.create(inbox=email, agent=team["ada"])
    return receive_message(
        inbox=email,
        message=InboundMessage(
            external_id="mail-1", identities=[("email", "ana@example.com")], text="Any news?"
        ),
    ).conversation.pk


def test_merge_two_conversations_and_undo(asgi_server, team, by_mail_too, browser):
    first = submit(asgi_server, team, "e2e-3", "My order is late")["conversation_id"]
    second = by_mail_too
    page = quiet(watched_page(browser))
    sign_in(page, asgi_server.url, "ada", PASSWORD)

    page.goto(f"{asgi_server.url}/c/{second}/")
    page.select_option("[data-merge-into]", str(first))
    page.click("[data-merge]")
    page.wait_for_url(f"{asgi_server.url}/c/{first}/")
    page.wait_for_selector(".ws-inbound:has-text('Any news?')")

    page.click("[data-unmerge]")
    page.wait_for_url(f"{asgi_server.url}/c/{second}/")
    page.wait_for_selector(".ws-inbound:has-text('Any news?')")
    assert page.problems == []


@pytest.fixture
def ada_in_arabic(team):
    team["ada"].language = "ar"
    team["ada"].save(update_fields=["language"])


def test_arabic_lays_out_right_to_left(asgi_server, team, ada_in_arabic, browser):
    submit(asgi_server, team, "e2e-4", "أين طلبي؟")
    page = quiet(watched_page(browser))
    sign_in(page, asgi_server.url, "ada", PASSWORD)

    assert page.get_attribute("html", "dir") == "rtl"
    assert page.get_attribute("html", "lang") == "ar"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "inbox-ar.png"), full_page=True)
    assert page.problems == []


def test_a_script_payload_in_text_or_html_never_runs(asgi_server, team, browser):
    payload = "<script>alert('text')</script><img src=x onerror=\"alert('img')\">"
    html = (
        f'<p>Hi</p>{payload}<svg onload="alert(\'svg\')"></svg><a href="javascript:alert(1)">x</a>'
    )
    conversation_id = submit(asgi_server, team, "e2e-5", payload, html=html)["conversation_id"]
    page = quiet(watched_page(browser))
    sign_in(page, asgi_server.url, "ada", PASSWORD)

    page.goto(f"{asgi_server.url}/c/{conversation_id}/")
    page.wait_for_selector("iframe.ws-email")
    page.wait_for_timeout(500)
    page.click("details summary")
    page.wait_for_timeout(300)

    assert not [p for p in page.problems if p.startswith("dialog")]
    assert page.locator(".ws-inbound .ws-text").first.inner_text().startswith("<script>")


def test_a_colleague_typing_in_the_same_conversation_is_shown(asgi_server, team, browser):
    conversation_id = submit(asgi_server, team, "e2e-6", "Is this in stock?")["conversation_id"]
    ada, bea = quiet(watched_page(browser)), quiet(watched_page(browser))
    for page, name in ((ada, "ada"), (bea, "bea")):
        sign_in(page, asgi_server.url, name, PASSWORD)
        page.goto(f"{asgi_server.url}/c/{conversation_id}/")
        page.wait_for_selector("html[data-live=on]")

    ada.fill("[data-composer-text]", "Yes, we have")

    bea.wait_for_selector(
        "[data-presence]:has-text('Ada is typing a reply')", timeout=LIVE_WITHIN_MS
    )
    assert ada.problems == [] and bea.problems == []


def test_keyboard_shortcuts_move_open_and_compose_and_the_help_lists_them(
    asgi_server, team, browser
):
    first = submit(asgi_server, team, "e2e-7", "First question")["conversation_id"]
    second = submit(asgi_server, team, "e2e-8", "Second question")["conversation_id"]
    page = quiet(watched_page(browser))
    sign_in(page, asgi_server.url, "ada", PASSWORD)
    page.goto(f"{asgi_server.url}/?view=all")
    page.wait_for_selector(f".ws-row[data-conversation='{second}']")

    # When the agent presses "?", then the help overlay opens; Escape closes it
    page.keyboard.press("?")
    assert page.locator("dialog[data-help]").evaluate("d => d.open") is True
    assert {"j", "k", "r", "n", "a", "?"} <= set(
        page.locator("dialog[data-help] kbd").all_inner_texts()
    )
    page.keyboard.press("Escape")
    assert page.locator("dialog[data-help]").evaluate("d => d.open") is False

    # When the agent presses j twice and k once, then the first row is selected
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    selected = page.locator(".ws-row.ws-selected")
    assert selected.count() == 1
    opened = selected.get_attribute("data-conversation")
    assert opened in {str(first), str(second)}

    # When Enter is pressed, then that conversation opens; r and n pick the composer's kind
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/c/{opened}/")
    page.keyboard.press("n")
    assert page.locator("[data-kind-note]").is_checked()
    assert page.evaluate("document.activeElement.matches('[data-composer-text]')")
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    assert page.locator("[data-kind-reply]").is_checked()
    assert page.problems == []
