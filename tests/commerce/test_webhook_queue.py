"""Platform webhooks are verified, stored and acknowledged in the request, and processed by the
drain: in order, in batches, a failure kept with its error and retried, replays dropped."""

from __future__ import annotations

import json

import pytest

from kefu.commerce import jobs, tasks, webhooks
from kefu.commerce.models import Order, Store, WebhookDelivery
from tests.commerce.test_shopify import ORDER, SECRET, sign


@pytest.fixture
def store(db):
    return Store.objects.create(name="Bob's", platform="shopify", webhook_secret=SECRET)


def post(client, store, topic, body: bytes, event_id="e1"):
    return client.post(
        f"/commerce/webhooks/shopify/{store.pk}", body, content_type="application/json",
        headers={"X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": sign(body),
                 "X-Shopify-Event-Id": event_id},
    )  # fmt: skip


def order(n: int, **changes) -> dict:
    return {**ORDER, "id": 1000 + n, "name": f"#{n}", **changes}


def test_the_request_stores_the_raw_delivery_and_the_drain_processes_it(client, store):
    body = json.dumps(order(1)).encode()
    answer = post(client, store, "orders/create", body)
    assert (answer.status_code, answer.json()) == (200, {"status": "accepted"})
    stored = WebhookDelivery.objects.get()
    assert (stored.platform, stored.topic, stored.event_id) == ("shopify", "orders/create", "e1")
    assert stored.payload.encode() == body  # exactly what the signature covered
    assert stored.processed_at is None
    assert not Order.objects.exists()  # nothing processed in the request

    assert tasks.drain_webhooks.call() == 1
    stored.refresh_from_db()
    assert stored.processed_at is not None and stored.attempts == 0
    assert Order.objects.get().number == "#1"
    assert webhooks.drain() == 0  # nothing left


def test_a_replay_is_dropped_at_the_door_before_and_after_processing(client, store):
    body = json.dumps(order(1)).encode()
    post(client, store, "orders/create", body)
    assert post(client, store, "orders/create", body).json() == {"status": "duplicate"}
    webhooks.drain()
    assert post(client, store, "orders/updated", body).json() == {"status": "duplicate"}
    assert WebhookDelivery.objects.count() == 1
    assert Order.objects.count() == 1


def test_a_failing_delivery_rolls_back_alone_and_keeps_its_error(client, store):
    post(client, store, "orders/create", json.dumps(order(1)).encode(), "a")
    broken = order(2, currency="XXXX")  # signed by the shop, but not a currency
    post(client, store, "orders/create", json.dumps(broken).encode(), "b")
    post(client, store, "orders/create", json.dumps(order(3)).encode(), "c")

    assert webhooks.drain() == 3
    assert sorted(Order.objects.values_list("number", flat=True)) == ["#1", "#3"]
    failed = WebhookDelivery.objects.get(event_id="b")
    assert failed.processed_at is None and failed.attempts == 1
    assert "XXXX" in failed.error
    assert webhooks.drain() == 0  # its retry is not due yet


def test_after_the_last_attempt_a_delivery_stays_failed_until_replayed(client, store):
    post(client, store, "orders/create", json.dumps(order(2, currency="XXXX")).encode(), "b")
    for _ in range(webhooks.MAX_ATTEMPTS):
        WebhookDelivery.objects.update(next_attempt_at=None)
        webhooks.drain()
    failed = WebhookDelivery.objects.get()
    assert failed.attempts == webhooks.MAX_ATTEMPTS
    assert list(webhooks.failed_deliveries()) == [failed]
    WebhookDelivery.objects.update(next_attempt_at=None)
    assert webhooks.drain() == 0  # given up: never retried on its own

    # The shop fixes its data; an admin replays the stored payload.
    fixed = order(2)
    WebhookDelivery.objects.update(payload=json.dumps(fixed))
    assert webhooks.replay(store=store) == 1
    assert webhooks.drain() == 1
    assert Order.objects.get().number == "#2"
    assert not webhooks.failed_deliveries().exists()


def test_unknown_topics_are_stored_and_marked_done(client, store):
    post(client, store, "products/update", b'{"id": 1}')
    webhooks.drain()
    delivery = WebhookDelivery.objects.get()
    assert delivery.processed_at is not None and delivery.error == ""


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"x" * (webhooks.MAX_BODY + 1), {}, 413),
        (b"not json", {}, 400),
        (b"[1, 2]", {}, 400),
        (b"{}", {"X-Shopify-Event-Id": ""}, 400),
    ],
)
def test_bad_deliveries_are_answered_and_store_nothing(client, store, body, headers, status):
    base = {"X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": sign(body),
            "X-Shopify-Event-Id": "e1"}  # fmt: skip
    answer = client.post(
        f"/commerce/webhooks/shopify/{store.pk}", body, content_type="application/json",
        headers={**base, **headers},
    )  # fmt: skip
    assert answer.status_code == status
    assert not WebhookDelivery.objects.exists()


def test_another_platforms_endpoint_does_not_know_the_store(client, store):
    body = json.dumps(order(1)).encode()
    answer = client.post(
        f"/commerce/webhooks/woocommerce/{store.pk}", body, content_type="application/json",
        headers={"X-WC-Webhook-Topic": "order.created", "X-WC-Webhook-Signature": sign(body),
                 "X-WC-Webhook-Delivery-ID": "d1"},
    )  # fmt: skip
    assert answer.status_code == 404


def test_one_drain_at_a_time_and_the_holder_goes_round_again(client, store):
    post(client, store, "orders/create", json.dumps(order(1)).encode())
    assert jobs.acquire(webhooks.LEASE_NAME, "another worker")
    assert webhooks.drain() == 0  # the lease is taken: this drain leaves the work to it
    assert not Order.objects.exists()
    assert not jobs.release(webhooks.LEASE_NAME, "another worker")  # asked to go round again
    jobs.drop(webhooks.LEASE_NAME, "another worker")
    assert webhooks.drain() == 1
    assert Order.objects.count() == 1


def test_batches_process_everything_in_arrival_order(client, store):
    for version in range(5):
        payload = order(1, note=f"v{version}", total_price=f"{100 + version}.00")
        post(client, store, "orders/updated", json.dumps(payload).encode(), f"e{version}")
    assert webhooks.drain(batch=2) == 5
    assert Order.objects.get().total == 10400  # the last one wins
    assert not webhooks.pending().exists()


def test_a_snapshot_older_than_the_one_kept_changes_nothing(client, store):
    newer = order(1, updated_at="2026-11-02T10:00:00-05:00", total_price="90.00")
    older = order(1, updated_at="2026-11-02T09:00:00-05:00", total_price="115.00")
    post(client, store, "orders/updated", json.dumps(newer).encode(), "new")
    post(client, store, "orders/updated", json.dumps(older).encode(), "late-retry")
    assert webhooks.drain() == 2
    kept = Order.objects.get()
    assert kept.total == 9000
    assert kept.platform_updated_at.isoformat() == "2026-11-02T15:00:00+00:00"
    assert kept.events.filter(kind="synced").count() == 0  # only "created"
    assert WebhookDelivery.objects.get(event_id="late-retry").processed_at is not None


def test_with_the_sync_setting_the_request_processes_at_once(client, store, settings):
    settings.KEFU_COMMERCE_WEBHOOKS_SYNC = True
    post(client, store, "orders/create", json.dumps(order(1)).encode())
    assert Order.objects.get().number == "#1"
    assert WebhookDelivery.objects.get().processed_at is not None
