"""The back office renders for an admin over demo-like data and refuses everyone else."""

import pytest

from kefu.accounts.models import Role
from kefu.conversations.actions import receive_message
from kefu.conversations.inbound import InboundMessage
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

PAGES = [
    "/admin/",
    "/admin/conversations/conversation/",
    "/admin/conversations/inbox/",
    "/admin/customers/customer/",
    "/admin/accounts/agent/",
    "/admin/accounts/apitoken/",
    "/admin/accounts/auditlog/",
]


def test_admin_pages_render(client, inbox):
    result = receive_message(
        inbox=inbox,
        message=InboundMessage(
            external_id="a", identities=[("email", "a@x.com")], text="<b>hi</b>"
        ),
    )
    admin = AgentFactory(role=Role.ADMIN, is_staff=True, is_superuser=True)
    client.force_login(admin)
    for page in [
        *PAGES,
        f"/admin/conversations/conversation/{result.conversation.pk}/change/",
        f"/admin/customers/customer/{result.conversation.customer_id}/change/",
    ]:
        response = client.get(page)
        assert response.status_code == 200, page
    detail = client.get(f"/admin/conversations/conversation/{result.conversation.pk}/change/")
    assert b"<b>hi</b>" not in detail.content  # customer text is escaped


def test_root_leads_to_the_back_office_and_agents_are_kept_out(client, agent):
    assert client.get("/").status_code == 302
    client.force_login(agent)
    response = client.get("/admin/conversations/conversation/")
    assert response.status_code == 302  # not staff: sent to the admin login
