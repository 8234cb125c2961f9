"""insert_many: the ingest path's multi-row insert (COPY on PostgreSQL, bulk_create elsewhere)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kefu.conversations.models import ConversationEvent, Message
from kefu.core.bulk import COPY_MIN_ROWS, adapt_datetime, insert_many, update_many
from kefu.customers.models import Customer, Identity
from tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db


# Both ways in on PostgreSQL: one INSERT ... RETURNING below COPY_MIN_ROWS, COPY from it on.
SIZES = [3, COPY_MIN_ROWS + 4]


@pytest.mark.parametrize("size", SIZES)
def test_rows_are_stored_with_their_new_ids_and_fields(size):
    # Given customers and identities built before any of them has an id
    customers = [
        Customer(name=f"C{n}", email=f"c{n}@example.com", tags=["vip"]) for n in range(size)
    ]
    identities = [Identity(customer=c, kind="email", value=c.email) for c in customers]

    # When both are inserted (the identities after their customers got ids)
    insert_many(customers)
    insert_many(identities)

    # Then every object has its id, is marked saved, and reads back exactly
    assert all(c.pk and not c._state.adding for c in customers)
    stored = {c.pk: c for c in Customer.objects.filter(pk__in=[c.pk for c in customers])}
    assert [(stored[c.pk].name, stored[c.pk].tags) for c in customers] == [
        (f"C{n}", ["vip"]) for n in range(size)
    ]
    assert stored[customers[0].pk].created_at is not None
    assert sorted(Identity.objects.values_list("customer_id", "value")) == sorted(
        (c.pk, c.email) for c in customers
    )


def test_ids_do_not_collide_with_rows_saved_one_by_one():
    first = Customer.objects.create(name="alone")
    batch = [Customer(name="a"), Customer(name="b")]
    insert_many(batch)
    later = Customer.objects.create(name="later")
    assert len({first.pk, batch[0].pk, batch[1].pk, later.pk}) == 4
    assert Customer.objects.count() == 4


@pytest.mark.parametrize("size", SIZES)
def test_a_unique_violation_is_djangos_integrity_error_and_stores_nothing(size):
    conversation = ConversationFactory()
    inbox = conversation.inbox
    at = timezone.now()
    fields = {"conversation": conversation, "inbox": inbox, "sent_at": at}
    Message.objects.create(**fields, external_id="dup", text="a")
    again = [Message(**fields, external_id=f"new{n}", text="b") for n in range(size - 1)]
    again.append(Message(**fields, external_id="dup", text="c"))
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_many(again)
    assert list(Message.objects.values_list("external_id", flat=True)) == ["dup"]


def test_nothing_to_insert_is_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        insert_many([])
    assert ConversationEvent.objects.count() == 0


def test_update_many_writes_the_named_fields_of_each_row_and_nothing_else():
    customers = [Customer(name=f"C{n}", email=f"c{n}@example.com") for n in range(3)]
    insert_many(customers)
    for n, customer in enumerate(customers):
        customer.name = f"renamed {n}"
        customer.tags = [f"t{n}"]
        customer.email = "not written"
    update_many(customers[:2], ["name", "tags"])
    stored = list(Customer.objects.order_by("pk").values_list("name", "tags", "email"))
    assert stored == [
        ("renamed 0", ["t0"], "c0@example.com"),
        ("renamed 1", ["t1"], "c1@example.com"),
        ("C2", [], "c2@example.com"),
    ]


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 11, 23, 17, 51, 45, 232355, tzinfo=UTC),
        datetime(2026, 11, 23, 17, 51, 45, tzinfo=UTC),  # no microseconds: no fraction either
        datetime(2026, 3, 29, 1, 30, tzinfo=ZoneInfo("Europe/Berlin")),
        datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")),
        datetime(2026, 11, 23, 9, 0),  # naive: left to Django
    ],
)
def test_adapted_datetimes_are_what_django_stores(value):
    assert adapt_datetime(value, connection) == connection.ops.adapt_datetimefield_value(value)


@pytest.mark.postgres
def test_copies_are_logged_like_other_queries():
    # Django's cursor wrapper does not see COPY: query counts would miss it otherwise.
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        insert_many([Customer(name=f"C{n}") for n in range(COPY_MIN_ROWS)])
    copies = [q["sql"] for q in queries if q["sql"].startswith("COPY")]
    assert len(copies) == 1
    assert copies[0].endswith(f"-- {COPY_MIN_ROWS} rows")
