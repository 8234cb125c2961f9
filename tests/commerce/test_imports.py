"""CSV import of a custom store's orders: exact amounts, grouping, whole orders or none."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from kefu.accounts.actions import create_token
from kefu.commerce.imports import import_orders_csv
from kefu.commerce.models import Order
from kefu.core.errors import InvalidInput
from tests.factories import AgentFactory

CSV = (
    "\ufeffexternal_id,number,currency,placed_at,total,email,payment_status,line_id,sku,title,"
    "quantity,unit_price\n"
    "c1,#C1,USD,2026-11-01T12:00:00+00:00,80.00,a@example.com,paid,l1,MUG,Mug,2,30.00\n"
    "c1,#C1,USD,2026-11-01T12:00:00+00:00,80.00,a@example.com,paid,l2,POT,Pot,1,20.00\n"
    "c2,#C2,JPY,2026-11-02T12:00:00+09:00,1500,b@example.com,paid,l3,FAN,Fan,1,1500\n"
    "c3,#C3,JPY,2026-11-02T12:00:00+09:00,1500.5,c@example.com,paid,l4,FAN,Fan,1,1500\n"
    ",#C4,USD,2026-11-02T12:00:00Z,1,d@example.com,paid,,,,,\n"
)


def test_orders_are_imported_whole_with_exact_amounts(shop):
    result = import_orders_csv(store=shop, content=CSV.encode())
    assert (result.created, result.updated) == (2, 0)
    assert result.errors == [
        "order c3 (row 5): JPY has 0 decimals; '1500.5' has more",
        "row 6: external_id is empty",
    ]
    c1 = Order.objects.get(external_id="c1")
    assert (c1.total, [(x.sku, x.unit_price) for x in c1.lines.order_by("id")]) == (
        8000, [("MUG", 3000), ("POT", 2000)],
    )  # fmt: skip
    assert Order.objects.get(external_id="c2").total == 1500
    assert not Order.objects.filter(external_id="c3").exists()
    again = import_orders_csv(store=shop, content=CSV.encode())
    assert (again.created, again.updated) == (0, 2)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"number,total\n1,2\n", "missing columns"), (b"\xff\xfe", "not UTF-8")],
)
def test_unusable_files_are_refused(shop, content, message):
    with pytest.raises(InvalidInput, match=message):
        import_orders_csv(store=shop, content=content)


def test_the_import_endpoint_is_for_admins(client, shop, agent):
    admin = AgentFactory(role="admin")
    url = f"/api/v1/stores/{shop.pk}/orders/import"
    for person, status in ((agent, 403), (admin, 200)):
        token = create_token(user=person, name="t")[1]
        upload = SimpleUploadedFile("orders.csv", CSV.encode(), content_type="text/csv")
        answer = client.post(url, {"file": upload}, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == status, answer.content
    assert answer.json()["created"] == 2
