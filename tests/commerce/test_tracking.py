"""Shipment tracking through AfterShip, against a local server answering with the documented
payloads (tests/commerce/fixtures/aftership), webhooks signed as AfterShip signs them, polling
with backoff when the provider is down, stalled parcels, and the commerce tick's claims."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from kefu.commerce import actions, jobs, schedule, tasks, tracking, webhooks
from kefu.commerce.carriers import aftership
from kefu.commerce.models import (
    OrderEvent,
    Shipment,
    ShipmentStatus,
    TrackingAccount,
    WebhookDelivery,
)
from kefu.core import http
from tests.commerce.conftest import make_order
from tests.connectors.fakes import JsonHandler, serving

FIXTURES = Path(__file__).parent / "fixtures" / "aftership"
API_KEY = "asat_test_key"
WEBHOOK_SECRET = "aftership-webhook-secret"
NUMBER = "1Z999AA10123456784"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


class FakeAfterShip(JsonHandler):
    """The Tracking API 2025-01: create, look up by number, get by id."""

    behaviour = "ok"
    trackings: dict[str, dict] = {}
    requests: list[dict] = []

    def _log(self, body=None):
        key = self.headers.get("as-api-key")
        entry = {"method": self.command, "path": self.path, "key": key, "body": body}
        FakeAfterShip.requests.append(entry)

    def _refused(self) -> bool:
        if self.behaviour == "down":
            self._json(503, {"meta": {"code": 503, "message": "Service Unavailable"}})
            return True
        if self.behaviour == "throttled":
            self._json(429, fixture("rate_limited.json"))
            return True
        return False

    def do_POST(self):
        body = self._body()
        self._log(body)
        if self._refused():
            return
        number = body["tracking_number"]
        if any(t["tracking_number"] == number for t in self.trackings.values()):
            return self._json(400, fixture("already_exists.json"))
        created = fixture("tracking_in_transit.json")
        created["data"]["tracking_number"] = number
        FakeAfterShip.trackings[created["data"]["id"]] = created["data"]
        self._json(201, created)

    def do_GET(self):
        self._log()
        if self._refused():
            return
        url = urlsplit(self.path)
        if url.path.endswith("/trackings"):
            number = parse_qs(url.query)["tracking_numbers"][0]
            found = [t for t in self.trackings.values() if t["tracking_number"] == number]
            return self._json(200, {"meta": {"code": 200}, "data": {"trackings": found}})
        tracking_id = url.path.rsplit("/", 1)[-1]
        if tracking_id not in self.trackings:
            return self._json(404, fixture("not_found.json"))
        self._json(200, {"meta": {"code": 200}, "data": self.trackings[tracking_id]})


@pytest.fixture
def fake_aftership(db, settings, monkeypatch):
    monkeypatch.setattr(http, "_sleep", lambda seconds: None)
    FakeAfterShip.behaviour, FakeAfterShip.trackings, FakeAfterShip.requests = "ok", {}, []
    with serving(FakeAfterShip, settings) as base:
        TrackingAccount.objects.create(
            provider="aftership", api_url=f"{base}/tracking/2025-01", api_key=API_KEY,
            webhook_secret=WEBHOOK_SECRET,
        )  # fmt: skip
        yield base


@pytest.fixture
def parcel(shop):
    order = make_order(shop)
    return actions.upsert_shipment(
        order=order, external_id="f1", carrier="ups", tracking_number=NUMBER, status="label_created"
    )


def delivered_tracking() -> dict:
    return copy.deepcopy(fixture("webhook_delivered.json")["msg"])


def test_normalizing_the_documented_tracking_object():
    update = aftership.update_from(fixture("tracking_in_transit.json")["data"])
    assert (update.tracker_id, update.tracking_number, update.status, update.carrier) == (
        "bff5a3bac79b472991a204172473a635", NUMBER, "in_transit", "ups",
    )  # fmt: skip
    assert update.events == [
        {"at": "2026-11-10T08:12:00-05:00", "status": "label_created",
         "location": "Louisville, KY, US",
         "description": "Shipper created a label, UPS has not received the package yet."},
        {"at": "2026-11-10T22:40:00-05:00", "status": "in_transit",
         "location": "Louisville, KY, USA", "description": "Departed from Facility"},
    ]  # fmt: skip
    statuses = {tag: aftership.status_of(tag) for tag in aftership.TAGS}
    assert statuses["AvailableForPickup"] == statuses["OutForDelivery"] == "out_for_delivery"
    assert statuses["AttemptFail"] == statuses["Expired"] == "exception"
    assert aftership.status_of("Exception", "Exception_011") == "returned"
    assert aftership.status_of("Exception", "Exception_004") == "exception"


def test_polling_registers_a_parcel_then_follows_it(fake_aftership, parcel):
    now = timezone.now()
    assert tracking.poll(now=now) == {"updated": 1, "failed": 0, "stopped": 0}
    created = FakeAfterShip.requests[0]
    assert (created["method"], created["key"]) == ("POST", API_KEY)
    assert created["body"] == {"tracking_number": NUMBER, "slug": "ups"}
    parcel.refresh_from_db()
    assert (parcel.tracker_id, parcel.status) == ("bff5a3bac79b472991a204172473a635", "in_transit")
    assert [e["description"] for e in parcel.events] == [
        "Shipper created a label, UPS has not received the package yet.",
        "Departed from Facility",
    ]
    assert parcel.next_poll_at == now + tracking.poll_interval()
    assert tracking.poll(now=now) == {"updated": 0, "failed": 0, "stopped": 0}  # not due yet

    FakeAfterShip.trackings[parcel.tracker_id] = delivered_tracking()
    later = now + tracking.poll_interval()
    assert tracking.poll(now=later)["updated"] == 1
    assert FakeAfterShip.requests[-1]["path"].endswith(f"/trackings/{parcel.tracker_id}")
    parcel.refresh_from_db()
    assert parcel.status == ShipmentStatus.DELIVERED and len(parcel.events) == 3
    statuses = [e.data["status"] for e in OrderEvent.objects.filter(kind="shipment_status")]
    assert statuses == ["label_created", "in_transit", "delivered"]
    assert not tracking.due(later + timedelta(days=1)).exists()  # delivered: no more polls


def test_a_parcel_the_provider_already_follows_is_looked_up(fake_aftership, parcel):
    known = fixture("tracking_in_transit.json")["data"]
    FakeAfterShip.trackings[known["id"]] = known
    assert tracking.poll()["updated"] == 1
    assert [r["method"] for r in FakeAfterShip.requests] == ["POST", "GET"]
    parcel.refresh_from_db()
    assert parcel.tracker_id == known["id"]


@pytest.mark.parametrize("behaviour", ["down", "throttled"])
def test_provider_trouble_keeps_everything_and_backs_off(fake_aftership, parcel, behaviour):
    other = actions.upsert_shipment(order=parcel.order, external_id="f2", carrier="dhl",
                                    tracking_number="3318810025", status="in_transit")  # fmt: skip
    FakeAfterShip.behaviour = behaviour
    now = timezone.now()
    assert tracking.poll(now=now) == {"updated": 0, "failed": 1, "stopped": 1}
    parcel.refresh_from_db()
    assert (parcel.status, parcel.events, parcel.tracker_id) == ("label_created", [], "")
    assert parcel.poll_failures == 1 and parcel.tracker_error
    assert parcel.next_poll_at == now + tracking.backoff(1)
    other.refresh_from_db()
    assert other.next_poll_at is None  # not tried: the pass stopped at the first failure

    FakeAfterShip.behaviour = "ok"
    assert tracking.poll(now=now + timedelta(minutes=2))["updated"] == 2
    parcel.refresh_from_db()
    assert (parcel.poll_failures, parcel.tracker_error, parcel.status) == (0, "", "in_transit")


def test_an_unknown_tracking_id_is_retried_slowly(fake_aftership, parcel):
    Shipment.objects.filter(pk=parcel.pk).update(tracker_id="gone")
    now = timezone.now()
    assert tracking.poll(now=now) == {"updated": 0, "failed": 1, "stopped": 0}
    parcel.refresh_from_db()
    assert parcel.tracker_error == "Tracking does not exist."
    assert parcel.next_poll_at == now + tracking.REFUSED_RETRY


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def post_webhook(client, body: bytes, signature: str | None = None):
    return client.post(
        "/commerce/webhooks/aftership", body, content_type="application/json",
        headers={"aftership-hmac-sha256": signature if signature is not None else sign(body)},
    )  # fmt: skip


def test_a_signed_webhook_updates_the_parcel_off_the_request(client, fake_aftership, parcel):
    body = (FIXTURES / "webhook_delivered.json").read_bytes()
    assert post_webhook(client, body, sign(body, "wrong")).status_code == 401
    assert post_webhook(client, body).json() == {"status": "accepted"}
    assert post_webhook(client, body).json() == {"status": "duplicate"}  # AfterShip retried
    delivery = WebhookDelivery.objects.get()
    assert (delivery.store_id, delivery.topic, delivery.event_id) == (
        None, "tracking_update", "0b7a6c3e-1c7b-4d5e-9a51-7f3f0d2c9e11",
    )  # fmt: skip
    parcel.refresh_from_db()
    assert parcel.status == "label_created"  # nothing done in the request

    webhooks.drain()
    parcel.refresh_from_db()
    assert (parcel.status, parcel.tracker_id) == ("delivered", "bff5a3bac79b472991a204172473a635")
    assert parcel.events[-1]["location"] == "New York, NY, USA"
    assert parcel.next_poll_at > timezone.now()  # pushed: no poll needed soon
    assert FakeAfterShip.requests == []


def test_webhooks_without_an_account_are_refused(client, db):
    body = (FIXTURES / "webhook_delivered.json").read_bytes()
    assert post_webhook(client, body).status_code == 404
    assert not WebhookDelivery.objects.exists()


def test_a_parcel_whose_last_scan_is_old_is_stalled_from_that_scan(shop, inbox, parcel):
    update = aftership.update_from(fixture("tracking_in_transit.json")["data"])
    actions.record_tracking(shipment=parcel, update=update, next_poll_at=None)
    parcel.refresh_from_db()
    last_scan = datetime(2026, 11, 11, 3, 40, tzinfo=UTC)  # 22:40 -05:00
    assert parcel.moved_at == last_scan
    assert actions.flag_stalled_shipments(now=last_scan + timedelta(days=4), days=5) == []
    assert actions.flag_stalled_shipments(now=last_scan + timedelta(days=6), days=5) == [parcel.pk]
    stalled = OrderEvent.objects.get(kind="shipment_stalled")
    assert stalled.data["tracking_number"] == NUMBER


def test_a_returned_parcel_raises_a_shipment_exception(
    parcel, heard, django_capture_on_commit_callbacks
):
    returned = delivered_tracking()
    returned.update(tag="Exception", subtag="Exception_011")
    with django_capture_on_commit_callbacks(execute=True):
        actions.record_tracking(shipment=parcel, update=aftership.update_from(returned),
                                next_poll_at=None)  # fmt: skip
    parcel.refresh_from_db()
    assert parcel.status == ShipmentStatus.RETURNED
    assert [e.name for e in heard if e.payload.get("action") == "shipment_status"] == [
        "shipment.exception"
    ]


# --- the tick ------------------------------------------------------------------------------------


def test_one_tick_chain_claims_each_turn(db):
    now = timezone.now()
    assert jobs.claim_turn("tick", 60, now=now)
    assert not jobs.claim_turn("tick", 60, now=now + timedelta(seconds=20))  # a duplicate chain
    assert jobs.claim_turn("tick", 60, now=now + timedelta(seconds=31))
    assert tasks.commerce_tick.call() == {}  # the turn was just claimed: this chain ends


def test_the_tick_runs_each_part_at_its_pace(fake_aftership, parcel):
    now = timezone.now()
    first = schedule.tick(now=now)
    assert first["tracking_updated"] == 1
    # The fixture's last scan is days old, so the freshly tracked parcel is stalled at once.
    assert first["stalled"] == 1
    assert "reconciling" in first
    again = schedule.tick(now=now + timedelta(minutes=1))
    assert "stalled" not in again and "reconciling" not in again
    later = schedule.tick(now=now + timedelta(hours=1))
    assert "stalled" in later and "reconciling" in later
