"""In Chromium against a real ASGI server: an agent opens a conversation that mentions an order,
sees the order and its tracking beside it, refunds one line, and sees it on both timelines."""

from __future__ import annotations

import httpx
import pytest

from kefu.accounts.actions import create_token
from kefu.accounts.models import Role
from kefu.commerce import actions
from kefu.conversations.models import InboxMembership
from tests.commerce.conftest import make_order
from tests.e2e.conftest import asgi_server, browser, sign_in, watched_page  # noqa: F401
from tests.factories import AgentFactory, InboxFactory, StoreFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"


@pytest.fixture
def shop_scene(transactional_db):
    store = StoreFactory(name="Mugs", currency="USD")
    inbox = InboxFactory(name="Mugs API", store=store)
    ada = AgentFactory(username="ada", display_name="Ada", role=Role.AGENT)
    InboxMembership.objects.create(inbox=inbox, agent=ada)
    order = make_order(store, number="#1001", email="ana@example.com")
    actions.upsert_shipment(
        order=order, external_id="f1", carrier="ups", tracking_number="1Z999AA10123456784",
        status="in_transit",
        events=[{"at": "2026-11-02T09:00:00Z", "status": "label_created", "location": "Austin"},
                {"at": "2026-11-03T10:00:00Z", "status": "in_transit", "location": "Louisville"}],
    )  # fmt: skip
    token = create_token(user=ada, name="e2e")[1]
    return {"inbox": inbox, "order": order, "token": token, "mug": order.lines.get(sku="MUG-B")}


def test_refund_one_line_from_the_conversation(asgi_server, shop_scene, browser):  # noqa: F811
    answer = httpx.post(
        f"{asgi_server.url}/api/v1/messages",
        json={
            "inbox_id": shop_scene["inbox"].pk, "external_id": "m-1",
            "customer": {"name": "Ana", "email": "ana@example.com"},
            "text": "Hello, one mug of order #1001 arrived broken.",
        },
        headers={"Authorization": f"Bearer {shop_scene['token']}"},
        timeout=10,
    )  # fmt: skip
    assert answer.status_code == 202, answer.text
    conversation_id = answer.json()["conversation_id"]
    order, mug = shop_scene["order"], shop_scene["mug"]

    page = watched_page(browser)
    page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    sign_in(page, asgi_server.url, "ada", PASSWORD)
    page.goto(f"{asgi_server.url}/c/{conversation_id}/")

    # The order the message names is beside it, with its tracking timeline.
    card = page.locator(f"#order-{order.pk}")
    card.wait_for(timeout=5000)
    assert "mentioned here" in card.inner_text()
    assert "Louisville" in card.locator(".cm-tracking-timeline").inner_text()
    assert "110.00 USD" in card.inner_text()

    # Refund one mug, confirmed.
    card.locator("details.cm-action summary", has_text="Refund").first.click()
    form = card.locator(f"form[action$='/orders/{order.pk}/refund']")
    form.locator(f"input[name='line-{mug.pk}']").fill("1")
    form.locator("input[name=reason]").fill("arrived broken")
    form.locator("input[name=confirm]").check()
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"{asgi_server.url}/c/{conversation_id}/")

    page.locator("text=Refunded 30.00 USD.").wait_for(timeout=5000)
    card = page.locator(f"#order-{order.pk}")
    card.wait_for(timeout=5000)
    assert "refunded 30.00 USD" in card.locator(".cm-order-timeline").inner_text()
    event = page.locator("#ws-timeline .ws-event[data-event='order_action']").last
    assert "Ada" in event.inner_text()
    assert page.problems == []
    # (No ORM here: Playwright's loop runs in this thread.) The API shows the same refund.
    detail = httpx.get(
        f"{asgi_server.url}/api/v1/orders/{order.pk}",
        headers={"Authorization": f"Bearer {shop_scene['token']}"},
        timeout=10,
    ).json()
    assert [(r["amount"], r["status"]) for r in detail["refunds"]] == [(3000, "succeeded")]
    assert detail["refunded"] == 3000
