"""GET /api/v1/search and the workspace's fragment GET /search/: auth, filters, escaping."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from kefu.accounts.models import Role
from kefu.conversations.actions import assign, set_status
from kefu.conversations.models import InboxMembership
from tests.factories import AgentFactory, InboxFactory
from tests.search.conftest import receive

pytestmark = pytest.mark.django_db


@pytest.fixture
def corpus(inbox, agent, committed):
    """Three conversations about parcels in the agent's inbox, one in a foreign inbox."""
    foreign = InboxFactory(kind="whatsapp")
    chat = InboxFactory(kind="chat", store=inbox.store)
    InboxMembership.objects.create(inbox=chat, agent=agent)
    old = timezone.now() - timedelta(days=40)
    with committed():
        a = receive(inbox, "a", "My parcel is late", email="ana@example.com", name="Ana Lima")
        b = receive(chat, "b", "Parcel arrived <b>open</b> <script>alert(1)</script>",
                    email="bo@example.com", sent_at=old)  # fmt: skip
        c = receive(inbox, "c", "Where is the parcel?", email="cy@example.com")
        secret = receive(foreign, "s", "parcel parcel parcel", email="zed@example.com")
    with committed():
        assign(conversation=c.conversation, actor=agent, assignee=agent)
        set_status(conversation=a.conversation, actor=agent, status="pending")
    return {
        "a": a.conversation, "b": b.conversation, "c": c.conversation,
        "secret": secret.conversation, "inbox": inbox, "chat": chat,
    }  # fmt: skip


def ids(response):
    assert response.status_code == 200, response.content
    return {hit["id"] for hit in response.json()["conversations"]}


def test_search_answers_with_grouped_results(api, corpus):
    response = api.get("/api/v1/search", q="parcel")
    body = response.json()
    assert ids(response) == {corpus[k].pk for k in "abc"}
    assert set(body) == {"query", "identifiers", "conversations", "customers", "orders", "more"}
    hit = next(h for h in body["conversations"] if h["id"] == corpus["a"].pk)
    assert hit["number"] == f"#{corpus['a'].pk}"
    assert hit["channel"] == "api" and hit["customer"] == "Ana Lima"
    assert hit["snippet"] == "My <mark>parcel</mark> is late"
    assert body["more"] is False and body["orders"] == []


def test_snippets_escape_everything_but_their_marks(api, corpus):
    body = api.get("/api/v1/search", q="arrived").json()
    snippet = body["conversations"][0]["snippet"]
    assert snippet == (
        "Parcel <mark>arrived</mark> &lt;b&gt;open&lt;/b&gt; &lt;script&gt;alert(1)&lt;/script&gt;"
    )


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "pending"}, "a"),
        ({"status": "new,open,pending"}, "abc"),
        ({"inbox": "{inbox}"}, "ac"),
        ({"channel": "chat"}, "b"),
        ({"assignee": "me"}, "c"),
        ({"assignee": "none"}, "ab"),
        ({"since": "{recent}"}, "ac"),
        ({"until": "{recent}"}, "b"),
        ({"until": "{old_day}"}, "b"),
    ],
)
def test_filters(api, agent, corpus, params, expected):
    values = {
        "inbox": corpus["inbox"].pk,
        "recent": (timezone.now() - timedelta(days=1)).isoformat(),
        "old_day": (timezone.now() - timedelta(days=40)).date().isoformat(),
    }
    query = {k: v.format(**values) for k, v in params.items()}
    assert ids(api.get("/api/v1/search", q="parcel", **query)) == {corpus[k].pk for k in expected}


def test_an_assignee_id_filters_too(api, agent, corpus):
    assert ids(api.get("/api/v1/search", q="parcel", assignee=str(agent.pk))) == {corpus["c"].pk}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "lost"}, "status"),
        ({"channel": "pigeon"}, "channel"),
        ({"assignee": "someone"}, "assignee"),
        ({"since": "last week"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": "51"}, "limit"),
    ],
)
def test_bad_filters_are_refused(api, corpus, params, field):
    response = api.get("/api/v1/search", q="parcel", **params)
    assert response.status_code == 422
    assert response.json()["field"] == field


def test_a_query_is_required_and_bounded(api):
    assert api.get("/api/v1/search").status_code == 422
    assert api.get("/api/v1/search", q="x" * 201).status_code == 422


def test_the_foreign_inbox_is_filtered_even_when_asked_for(api, corpus):
    assert ids(api.get("/api/v1/search", q="parcel", inbox=str(corpus["secret"].inbox_id))) == set()
    assert ids(api.get("/api/v1/search", q="parcel", channel="whatsapp")) == set()
    body = api.get("/api/v1/search", q=f"#{corpus['secret'].pk}").json()
    assert (body["conversations"], body["customers"], body["more"]) == ([], [], False)


def test_more_says_when_the_limit_cut_visible_results(api, corpus):
    body = api.get("/api/v1/search", q="parcel", limit="2").json()
    assert len(body["conversations"]) == 2 and body["more"] is True
    body = api.get("/api/v1/search", q="parcel", limit="3").json()
    assert len(body["conversations"]) == 3 and body["more"] is False  # the foreign one is unseen


def test_the_api_needs_a_token_or_a_session(client, agent, corpus):
    assert client.get("/api/v1/search", {"q": "parcel"}).status_code == 401
    client.force_login(agent)
    assert client.get("/api/v1/search", {"q": "parcel"}).status_code == 200


def test_an_admin_sees_every_inbox(client, corpus):
    admin = AgentFactory(role=Role.ADMIN)
    client.force_login(admin)
    response = client.get("/api/v1/search", {"q": "parcel"})
    assert ids(response) == {corpus[k].pk for k in ("a", "b", "c", "secret")}


# --- the htmx fragment ---------------------------------------------------------------------


def test_the_fragment_needs_a_login(client):
    response = client.get("/search/", {"q": "parcel"})
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/")


def test_the_fragment_lists_conversations_and_customers(client, agent, corpus):
    client.force_login(agent)
    response = client.get("/search/", {"q": "Ana"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-customer="{}"'.format(corpus["a"].customer_id) in html
    response = client.get("/search/", {"q": "arrived"})
    html = response.content.decode()
    assert f'data-conversation="{corpus["b"].pk}"' in html
    assert "<mark>arrived</mark>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert f'data-conversation="{corpus["secret"].pk}"' not in html


def test_the_fragment_says_when_nothing_matches_and_shows_bad_filters(client, agent, corpus):
    client.force_login(agent)
    nothing = client.get("/search/", {"q": "zanzibar"})
    assert nothing.status_code == 200 and "Nothing found" in nothing.content.decode()
    bad = client.get("/search/", {"q": "parcel", "status": "lost"})
    assert bad.status_code == 422 and "unknown status" in bad.content.decode()
    empty = client.get("/search/", {"q": "  "})
    assert empty.status_code == 200 and "search-hit" not in empty.content.decode()


def test_without_htmx_the_same_url_is_the_full_results_page(client, agent, corpus):
    client.force_login(agent)
    response = client.get("/search/", {"q": "arrived"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and 'id="search-q"' in html and 'value="arrived"' in html
    assert 'hx-trigger="input changed delay:250ms, search"' in html
    assert f'data-conversation="{corpus["b"].pk}"' in html
    fragment = client.get("/search/", {"q": "arrived"}, headers={"HX-Request": "true"})
    assert "<html" not in fragment.content.decode()
    assert fragment.content.decode().lstrip().startswith('<div class="search-results"')
