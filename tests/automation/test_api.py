"""The automation REST API: who may do what, shapes, and the composer's template flow."""

from __future__ import annotations

import pytest

from kefu.accounts.actions import create_token
from kefu.accounts.models import Role
from kefu.automation import actions as automation
from kefu.automation.models import Rule, SlaPolicy, Template
from kefu.conversations.models import InboxMembership
from tests.automation.conftest import inbound
from tests.factories import AgentFactory, InboxFactory


def client_for(client, person):
    token = create_token(user=person, name="t")[1]
    headers = {"Authorization": f"Bearer {token}"}

    class Api:
        def get(self, path, **params):
            return client.get(path, params, headers=headers)

        def post(self, path, body):
            return client.post(path, body, content_type="application/json", headers=headers)

        def patch(self, path, body):
            return client.patch(path, body, content_type="application/json", headers=headers)

        def put(self, path, body):
            return client.put(path, body, content_type="application/json", headers=headers)

        def delete(self, path):
            return client.delete(path, headers=headers)

    return Api()


@pytest.fixture
def admin_api(client, db):
    return client_for(client, AgentFactory(role=Role.ADMIN))


@pytest.fixture
def lead(inbox):
    person = AgentFactory(role=Role.LEAD)
    InboxMembership.objects.create(inbox=inbox, agent=person)
    return person


@pytest.fixture
def lead_api(client, lead):
    return client_for(client, lead)


BASE = "/api/v1/automation"


def test_agents_cannot_read_configuration(api):
    assert api.get(f"{BASE}/sla-policies").status_code == 403
    assert api.get(f"{BASE}/rules").status_code == 403


def test_admin_manages_policies(admin_api):
    created = admin_api.post(
        f"{BASE}/sla-policies",
        {"name": "VIP", "position": 1, "segments": ["VIP"], "first_response_seconds": 300},
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["segments"], body["clock"], body["pause_statuses"]) == (
        ["vip"],
        "business",
        ["pending", "on_hold"],
    )
    changed = admin_api.patch(f"{BASE}/sla-policies/{body['id']}", {"clock": "calendar"})
    assert changed.json()["clock"] == "calendar"
    bad = admin_api.post(
        f"{BASE}/sla-policies", {"name": "x", "inbox_kinds": ["fax"], "first_response_seconds": 5}
    )
    assert (bad.status_code, bad.json()["field"]) == (422, "inbox_kinds")
    assert admin_api.delete(f"{BASE}/sla-policies/{body['id']}").status_code == 204
    assert not SlaPolicy.objects.filter(pk=body["id"]).exists()


def test_leads_read_policies_but_cannot_change_them(lead_api):
    assert lead_api.get(f"{BASE}/sla-policies").status_code == 200
    response = lead_api.post(f"{BASE}/sla-policies", {"name": "x", "first_response_seconds": 60})
    assert response.status_code == 403


def test_business_hours_holidays_and_preview(admin_api):
    from tests.factories import StoreFactory

    store = StoreFactory(timezone="Asia/Shanghai", country="CN")
    created = admin_api.post(
        f"{BASE}/business-hours",
        {
            "store_id": store.pk,
            "name": "Shanghai",
            "weekly": {"0": [["09:00", "18:00"]], "1": [["09:00", "18:00"]]},
        },
    )
    assert created.status_code == 201, created.json()
    hours_id = created.json()["id"]
    holiday = admin_api.post(
        f"{BASE}/business-hours/{hours_id}/holidays",
        {"date": "2025-11-11", "name": "11.11", "annual": True, "hours": [["08:00", "23:00"]]},
    )
    assert holiday.status_code == 201
    preview = admin_api.get(
        f"{BASE}/business-hours/{hours_id}/preview", seconds=3600, start="2025-06-09T17:30:00+08:00"
    )
    assert preview.json()["due_at"] == "2025-06-10T01:30:00Z"  # Tuesday 09:30 in Shanghai
    bad = admin_api.post(
        f"{BASE}/business-hours", {"name": "x", "weekly": {"0": [["18:00", "09:00"]]}}
    )
    assert bad.status_code == 422
    duplicate = admin_api.post(
        f"{BASE}/business-hours",
        {"store_id": store.pk, "name": "again", "weekly": {"0": [["09:00", "10:00"]]}},
    )
    assert duplicate.status_code == 409


def test_lead_rules_are_limited_to_their_inboxes(lead_api, inbox):
    other = InboxFactory()
    rule = {
        "name": "tag",
        "trigger": "message_received",
        "actions": [{"type": "add_tags", "tags": ["x"]}],
    }
    assert lead_api.post(f"{BASE}/rules", rule).status_code == 403  # global: admins only
    assert lead_api.post(f"{BASE}/rules", {**rule, "inbox_ids": [other.pk]}).status_code == 403
    created = lead_api.post(f"{BASE}/rules", {**rule, "inbox_ids": [inbox.pk]})
    assert created.status_code == 201, created.json()


def test_foreign_rules_are_not_found(lead_api, db):
    other = InboxFactory()
    rule = automation.save_rule(
        actor=None,
        data={
            "name": "theirs",
            "trigger": "message_received",
            "inbox_ids": [other.pk],
            "actions": [{"type": "close"}],
        },
    )
    assert lead_api.get(f"{BASE}/rules/{rule.pk}").status_code == 404
    assert lead_api.get(f"{BASE}/rules/{rule.pk}/executions").status_code == 404


def test_webhook_secret_is_write_only(admin_api):
    created = admin_api.post(
        f"{BASE}/rules",
        {
            "name": "hook",
            "trigger": "sla_breached",
            "actions": [{"type": "webhook", "url": "https://example.com/h", "secret": "s"}],
        },
    )
    assert created.json()["actions"] == [{"type": "webhook", "url": "https://example.com/h"}]
    assert "secret_encrypted" in Rule.objects.get().actions[0]


def test_dry_run_through_the_api(admin_api, inbox, django_capture_on_commit_callbacks):
    for i in range(3):
        inbound(inbox, "refund please" if i == 1 else "hello", who=f"d{i}@example.com")
    response = admin_api.post(
        f"{BASE}/rules/dry-run",
        {
            "trigger": "message_received",
            "conditions": {"all": [{"field": "text", "op": "contains", "value": "refund"}]},
            "last": 10,
        },
    )
    assert response.status_code == 200, response.json()
    assert (response.json()["evaluated"], response.json()["matched"]) == (3, 1)
    assert not Rule.objects.exists()


def test_template_search_render_and_use(api, agent, inbox, django_capture_on_commit_callbacks):
    automation.save_template(
        actor=None,
        data={
            "name": "Where is my order",
            "shortcut": "wismo",
            "bodies": {"en": "Hi {{ customer.first_name }}!", "zh": "{{ customer.name }}您好！"},
        },
    )
    automation.save_template(
        actor=None,
        data={"name": "Refund done", "shortcut": "refund", "bodies": {"en": "Refunded."}},
    )
    hidden = InboxFactory()
    automation.save_template(
        actor=None,
        data={
            "name": "Other team",
            "shortcut": "wismo-b2b",
            "inbox_ids": [hidden.pk],
            "bodies": {"en": "x"},
        },
    )
    found = api.get(f"{BASE}/templates", q="/wis").json()
    assert [t["shortcut"] for t in found] == ["wismo"]
    assert [t["shortcut"] for t in api.get(f"{BASE}/templates", q="refund").json()] == ["refund"]
    with django_capture_on_commit_callbacks(execute=True):
        conversation = inbound(
            inbox, "你好，我的包裹到哪里了？已经一周了", customer_name="李雷"
        ).conversation
    template_id = found[0]["id"]
    rendered = api.post(
        f"{BASE}/templates/{template_id}/render", {"conversation_id": conversation.pk}
    )
    assert rendered.json() == {"text": "李雷您好！", "language": "zh", "message_id": None}
    used = api.post(
        f"{BASE}/templates/{template_id}/use", {"conversation_id": conversation.pk, "send": True}
    )
    assert used.status_code == 200 and used.json()["message_id"]
    assert Template.objects.get(pk=template_id).usage_count == 1
    # Agents cannot create templates; foreign ones are 404.
    assert (
        api.post(
            f"{BASE}/templates", {"name": "x", "shortcut": "x", "bodies": {"en": "x"}}
        ).status_code
        == 403
    )
    foreign = Template.objects.get(shortcut="wismo-b2b")
    assert api.get(f"{BASE}/templates/{foreign.pk}").status_code == 404


def test_injection_is_refused_by_the_api(admin_api):
    response = admin_api.post(
        f"{BASE}/templates",
        {"name": "evil", "shortcut": "evil", "bodies": {"en": "{{ ''.__class__.__mro__ }}"}},
    )
    assert (response.status_code, response.json()["field"]) == (422, "bodies")


def test_conversation_sla_and_at_risk(api, inbox, django_capture_on_commit_callbacks):
    from kefu.automation.defaults import install
    from kefu.automation.models import BusinessHours

    install()
    BusinessHours.objects.all().delete()
    automation.bump_config()
    with django_capture_on_commit_callbacks(execute=True):
        conversation = inbound(inbox, "hello").conversation
    sla = api.get(f"{BASE}/conversations/{conversation.pk}/sla").json()
    assert sla["policy"] == "Everything else" and sla["first_response_due_at"]
    risky = api.get(f"{BASE}/sla/at-risk", within_minutes=25 * 60).json()
    assert [r["id"] for r in risky] == [conversation.pk]
    assert api.get(f"{BASE}/sla/at-risk", within_minutes=60).json() == []
    other = inbound(InboxFactory(), "x", who="z@example.com").conversation
    assert api.get(f"{BASE}/conversations/{other.pk}/sla").status_code == 404


def test_routing_settings_and_fairness(lead_api, inbox):
    response = lead_api.put(
        f"{BASE}/routing/{inbox.pk}", {"mode": "round_robin", "away_grace_minutes": 5}
    )
    assert response.json()["mode"] == "round_robin"
    assert lead_api.get(f"{BASE}/routing/{inbox.pk}").json()["away_grace_minutes"] == 5
    assert (
        lead_api.put(f"{BASE}/routing/{InboxFactory().pk}", {"mode": "round_robin"}).status_code
        == 404
    )
    assert lead_api.get(f"{BASE}/routing/fairness").json()["jain_index"] == 1.0


def test_pages_for_leads_and_agents(client, lead, agent, inbox, django_capture_on_commit_callbacks):
    rule = automation.save_rule(
        actor=None,
        data={"name": "Tag refunds", "trigger": "message_received", "actions": [{"type": "close"}]},
    )
    client.force_login(lead)
    overview = client.get("/automation/")
    assert overview.status_code == 200
    assert "Tag refunds" in overview.content.decode()
    assert client.get(f"/automation/rules/{rule.pk}/dry-run/").status_code == 200
    client.force_login(agent)
    assert client.get("/automation/").status_code == 403
    assert client.get("/automation/sla/at-risk/").status_code == 200


def test_back_office_saves_through_actions(client, db):
    admin_user = AgentFactory(role=Role.ADMIN, is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    response = client.post(
        "/admin/automation/slapolicy/add/",
        {
            "name": "From admin",
            "position": 5,
            "store_ids": "[]",
            "inbox_kinds": '["fax"]',
            "inbox_ids": "[]",
            "priorities": "[]",
            "segments": "[]",
            "intents": "[]",
            "first_response_seconds": 60,
            "clock": "calendar",
            "pause_statuses": "[]",
            "warn_percent": 80,
        },
    )
    assert response.status_code == 302
    assert not SlaPolicy.objects.filter(name="From admin").exists()  # refused: unknown kind
