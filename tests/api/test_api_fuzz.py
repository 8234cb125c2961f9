"""Whatever a client sends, the API answers with JSON and never a 500 (property tests).

Hypothesis builds payloads field by field: well-formed values, values of the wrong type, and
strings with every kind of character (NUL, lone surrogates, right-to-left marks, emoji, CJK).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kefu.conversations.models import Message
from tests.api.test_core_api import a_conversation, caller_for

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=int(__import__("os").environ.get("KEFU_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ANSWERS = {200, 201, 202, 400, 404, 409, 413, 422}

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
odd = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    any_text,
    st.lists(any_text, max_size=3),
    st.dictionaries(any_text, any_text, max_size=2),
)
dates = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    any_text,
)
phones = st.one_of(
    st.from_regex(r"\+?[0-9 ()\-]{0,20}", fullmatch=True),
    any_text,
)
emails = st.one_of(st.emails().map(str), any_text)


def _send(caller, method, path, payload):
    # ensure_ascii keeps lone surrogates as \\ud800 escapes: valid JSON a client can send.
    return caller.client.generic(
        method.upper(),
        path,
        json.dumps(payload, ensure_ascii=True),
        content_type="application/json",
        headers=caller.headers,
    )


def _json_answer(response):
    assert response.status_code in ANSWERS, (response.status_code, response.content[:500])
    data = response.json()
    if response.status_code >= 400:
        assert isinstance(data["detail"], str) and data["detail"]
    return data


@st.composite
def submissions(draw, inbox_id):
    customer = draw(
        st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.one_of(any_text, odd),
                    "email": emails,
                    "phone": phones,
                    "external_id": st.one_of(any_text, odd),
                },
            ),
            odd,
        )
    )
    payload = draw(
        st.fixed_dictionaries(
            {"inbox_id": st.one_of(st.just(inbox_id), odd), "customer": st.just(customer)},
            optional={
                "external_id": st.one_of(any_text, odd),
                "subject": any_text,
                "text": st.one_of(any_text, odd),
                "html": any_text.map(lambda t: f"<p>{t}</p><script>{t}</script>"),
                "sent_at": st.one_of(dates, odd),
                "references": st.one_of(st.lists(any_text, max_size=3), odd),
                "thread_key": any_text,
            },
        )
    )
    return payload


@FUZZ
@given(data=st.data())
def test_any_submission_is_answered_with_json_and_never_a_500(client, agent, inbox, data):
    caller = caller_for(client, agent)
    payload = data.draw(submissions(inbox.pk))

    answer = _json_answer(_send(caller, "post", "/api/v1/messages", payload))

    if "message_id" in answer:
        stored = Message.objects.get(pk=answer["message_id"])
        assert "\x00" not in stored.text + stored.subject + (stored.external_id or "")


@FUZZ
@given(data=st.data())
def test_any_batch_is_answered_item_by_item_and_never_a_500(client, agent, inbox, data):
    caller = caller_for(client, agent)
    items = data.draw(st.lists(submissions(inbox.pk), min_size=1, max_size=5))

    answer = _json_answer(_send(caller, "post", "/api/v1/messages/batch", {"messages": items}))

    if "results" in answer:
        assert [r["index"] for r in answer["results"]] == list(range(len(items)))


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(
            ["status", "inbox", "assignee", "team", "priority", "tag", "updated_since", "cursor",
             "limit"]
        ),
        st.one_of(any_text, st.integers(min_value=-(2**70), max_value=2**70).map(str), dates),
        max_size=4,
    )
)  # fmt: skip
def test_any_list_query_is_answered_with_json_and_never_a_500(client, agent, inbox, params):
    caller = caller_for(client, agent)
    a_conversation(inbox, "fuzz-list")

    response = caller.client.get("/api/v1/conversations", params, headers=caller.headers)

    _json_answer(response)


@FUZZ
@given(
    patch=st.fixed_dictionaries(
        {},
        optional={
            "status": st.one_of(st.sampled_from(["open", "solved", "closed", "pending"]), odd),
            "priority": st.one_of(st.sampled_from(["low", "urgent"]), odd),
            "assignee_id": odd,
            "team_id": odd,
            "tags": st.one_of(st.lists(any_text, max_size=3), odd),
        },
    ),
    message=st.fixed_dictionaries(
        {},
        optional={
            "kind": st.one_of(st.sampled_from(["reply", "note"]), odd),
            "text": st.one_of(any_text, odd),
            "html": any_text,
            "status": st.one_of(st.sampled_from(["solved", "pending"]), odd),
        },
    ),
)
def test_any_patch_or_reply_is_answered_with_json_and_never_a_500(
    client, agent, inbox, patch, message
):
    caller = caller_for(client, agent)
    conversation = a_conversation(inbox, "fuzz-patch")
    path = f"/api/v1/conversations/{conversation.pk}"

    _json_answer(_send(caller, "patch", path, patch))
    _json_answer(_send(caller, "post", f"{path}/messages", message))
