"""In a real Chromium: the search box answers as the agent types (debounced, one request per
pause), groups the results, and the keyboard shortcuts work, all under the strict policy."""

from __future__ import annotations

import pytest

from kefu.conversations.models import InboxMembership
from tests.factories import AgentFactory, InboxFactory
from tests.search.conftest import receive

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    from tests.conftest import CHROMIUM_PATH

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.problems = []  # console errors (CSP violations among them), asserted empty
        page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: page.problems.append(str(error)))
        page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
        yield page
        browser.close()


@pytest.fixture
def world(transactional_db):
    # Made before Playwright starts: its event loop makes Django refuse database calls.
    agent = AgentFactory(username="ada")
    mine, foreign = InboxFactory(name="Mail"), InboxFactory(name="Elsewhere")
    InboxMembership.objects.create(inbox=mine, agent=agent)
    parcel = receive(mine, "a", "My parcel never arrived", email="ana@example.com", name="Ana Lima")
    receive(mine, "b", "订单还没到，请查一下物流", phone="+86 138 0013 8000", name="李伟")
    receive(foreign, "c", "parcel parcel parcel", email="zed@example.com", name="Zed")
    return {"agent": agent, "parcel": parcel.conversation}


def sign_in(page, live_server):
    page.goto(f"{live_server.url}/accounts/login/?next=/search/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", "correct horse battery")
    page.click("form.stacked button[type=submit]")
    page.wait_for_url("**/search/")


def test_results_appear_as_you_type_debounced_and_grouped(world, live_server, page):
    sign_in(page, live_server)
    requests = []
    page.on("request", lambda r: requests.append(r.url) if "q=" in r.url else None)
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "search-q"
    page.keyboard.type("parcel", delay=30)  # faster than the debounce: one request at the end
    page.wait_for_selector("#search-results .search-hit")
    page.wait_for_timeout(400)
    assert len(requests) == 1 and requests[0].endswith("q=parcel")
    hits = page.locator("#search-results [data-conversation]")
    assert hits.count() == 1
    assert hits.get_attribute("data-conversation") == str(world["parcel"].pk)
    assert page.inner_html("#search-results .search-snippet").count("<mark>parcel</mark>") == 1
    groups = page.locator("#search-results h3")
    assert [groups.nth(i).text_content() for i in range(groups.count())] == ["Conversations"]
    page.fill("#search-q", "(0086) 138-0013-8000")  # a phone as people type it: exact lookup
    page.wait_for_selector("#search-results [data-customer]")
    assert page.text_content("#search-results [data-customer] .search-name") == "李伟"
    assert [groups.nth(i).text_content() for i in range(groups.count())] == [
        "Conversations",
        "Customers",
    ]
    assert page.problems == []


def test_keyboard_focus_and_moving_through_the_results(world, live_server, page):
    sign_in(page, live_server)
    page.fill("#search-q", "")
    page.locator("h1").click()
    page.keyboard.press("Control+k")
    assert page.evaluate("document.activeElement.id") == "search-q"
    page.keyboard.type("物流")
    page.wait_for_selector("#search-results .search-hit")
    assert "<mark>物流</mark>" in page.inner_html("#search-results")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.closest('.search-hit') !== null")
    page.keyboard.press("Escape")
    assert page.evaluate("document.activeElement.id") == "search-q"
    page.keyboard.press("Escape")  # clears the box, and so the results
    page.wait_for_selector("#search-results .search-hit", state="detached")
    assert page.input_value("#search-q") == ""
    assert page.problems == []


def test_the_box_in_the_workspace_header_leads_to_the_conversation(world, live_server, page):
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/")
    page.keyboard.press("/")
    page.keyboard.type("never arriv")
    page.wait_for_selector("#search-results [data-conversation]")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/c/{world['parcel'].pk}/")
    # The workspace's live socket is not served by the test's WSGI server: its errors aside.
    assert [p for p in page.problems if "/ws/" not in p and "WebSocket" not in p] == []
