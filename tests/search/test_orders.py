"""Orders in search: order numbers in every format and tracking numbers find the order, its
customer and the conversations about it; orders of stores and customers beyond the agent's
reach stay invisible, counts included."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from kefu.accounts.models import Role
from kefu.commerce.models import ConversationOrder, Order, Shipment
from kefu.conversations.models import InboxMembership
from kefu.search.service import search
from tests.factories import AgentFactory, InboxFactory, StoreFactory
from tests.search.conftest import conversation_ids, customer_ids, receive

pytestmark = pytest.mark.django_db


def order(store, number, external_id, customer=None, *, days_ago=1, **fields):
    return Order.objects.create(
        store=store,
        customer=customer,
        number=number,
        external_id=external_id,
        currency="USD",
        placed_at=timezone.now() - timedelta(days=days_ago),
        **fields,
    )


@pytest.fixture
def shop(agent, committed):
    """The agent's store and inbox with two customers and three orders; a foreign store too."""
    mine, theirs = StoreFactory(name="Gadgets US"), StoreFactory(name="Other brand")
    inbox, foreign = InboxFactory(store=mine), InboxFactory(store=theirs, kind="whatsapp")
    InboxMembership.objects.create(inbox=inbox, agent=agent)
    with committed():
        ana = receive(inbox, "a", "Hello, where is my parcel?", email="ana@example.com", name="Ana")
        cy = receive(inbox, "c", "Asking for my mother's order", email="cy@example.com", name="Cy")
        zed = receive(foreign, "z", "Where is it", email="zed@example.com", name="Zed")
    ana_order = order(mine, "#1001", "5550001", ana.conversation.customer)
    Shipment.objects.create(order=ana_order, carrier="ups", tracking_number="1Z999AA10123456784")
    ConversationOrder.objects.create(conversation=cy.conversation, order=ana_order)
    amazon = order(mine, "114-3941689-8772232", "114-3941689-8772232", email="bo@example.com")
    secret = order(theirs, "#1002", "5550002", zed.conversation.customer)
    Shipment.objects.create(order=secret, carrier="dhl", tracking_number="LX123456789CN")
    return {
        "ana": ana.conversation, "cy": cy.conversation, "zed": zed.conversation,
        "ana_order": ana_order, "amazon": amazon, "secret": secret,
    }  # fmt: skip


def order_ids(results):
    return [hit["id"] for hit in results.orders]


@pytest.mark.parametrize(
    "query",
    ["#1001", "1001", " #1001 ", "5550001", "1Z999AA10123456784", "1z 999 aa1 01 2345 6784"],
)
def test_an_order_is_found_with_its_customer_and_conversations(agent, shop, query):
    results = search(agent=agent, q=query)
    assert order_ids(results) == [shop["ana_order"].pk]
    assert results.orders[0]["number"] == "#1001"
    assert results.orders[0]["summary"] == "Ana · Gadgets US"
    assert customer_ids(results)[0] == shop["ana"].customer_id and results.customers[0].exact
    # The customer's own conversation and the one the order is linked to, both exact.
    exact = [hit.conversation.pk for hit in results.conversations if hit.exact]
    assert set(exact) >= {shop["ana"].pk, shop["cy"].pk}


def test_an_amazon_order_of_the_agents_store_is_found_without_a_customer(agent, shop):
    results = search(agent=agent, q="114-3941689-8772232")
    assert order_ids(results) == [shop["amazon"].pk]
    assert results.orders[0]["summary"] == "bo@example.com · Gadgets US"


@pytest.mark.parametrize("query", ["#1002", "1002", "5550002", "LX123456789CN"])
def test_foreign_orders_are_invisible_even_as_counts(agent, shop, query):
    admin = AgentFactory(role=Role.ADMIN)
    assert order_ids(search(agent=admin, q=query)) == [shop["secret"].pk]
    results = search(agent=agent, q=query)
    nobody = search(agent=agent, q="#987654" if query.startswith("#") else "LX987654321CN")
    assert (results.orders, results.customers, results.more) == ([], [], False)
    assert (nobody.orders, nobody.customers, nobody.more) == ([], [], False)
    assert shop["zed"].pk not in conversation_ids(results)
    assert shop["zed"].customer_id not in customer_ids(results)


def test_orders_in_the_api_and_the_fragment(client, agent, shop):
    client.force_login(agent)
    response = client.get("/api/v1/search", {"q": "#1001"})
    assert response.status_code == 200
    (hit,) = response.json()["orders"]
    assert (hit["id"], hit["number"], hit["store"]) == (shop["ana_order"].pk, "#1001", "Gadgets US")
    fragment = client.get("/search/", {"q": "1001"}, headers={"HX-Request": "true"})
    html = fragment.content.decode()
    assert "Orders" in html and f'data-order="{shop["ana_order"].pk}"' in html
    assert f'data-order="{shop["secret"].pk}"' not in html
