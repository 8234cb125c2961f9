"""Commerce: Shopify webhook ingestion rate and the order panel's server time (issue: commerce).

In a fresh kefu (SQLite and/or a freshly made PostgreSQL database), in process:

1. **webhook ingestion**: ``--webhooks`` signed ``orders/updated`` deliveries (distinct event
   ids) spread over ``--orders`` orders of one Shopify store, each with two lines, after a
   warm-up creating the orders. Two rates: **accepted** per second through Django's test client
   (the whole view: middleware, HMAC check, JSON check, the stored delivery row, the drain
   poke), and **processed** per second by the webhook drain (``kefu.commerce.webhooks.drain``:
   parse and upsert, batches of 200 in one transaction, a savepoint each); and the serial
   end-to-end rate (both on one core, one after the other: a floor, since the web server and
   the worker run side by side in production).
2. **panel**: one customer holding ``--customer-orders`` orders (two lines and a shipment with
   three tracking events each) with a conversation naming one of them; p50/p95 of the commerce
   panel fragment (the 50 most recent orders, rendered) and of the workspace conversation page.

Usage: python bench/commerce.py [--engines sqlite,postgres] [--webhooks 2000] [--orders 200]
       [--customer-orders 200] [--repeat 40]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_average, machine, percentile, run_child

POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/kefu_bench_commerce2"
SECRET = "bench-secret"  # noqa: S105 (signs the benchmark's own webhooks)


def order_payload(n: int, version: int) -> dict:
    return {
        "id": 10_000 + n,
        "name": f"#{1000 + n}",
        "order_number": 1000 + n,
        "email": f"buyer{n % 50}@example.com",
        "currency": "USD",
        "created_at": "2026-11-01T12:00:00Z",
        "subtotal_price": "110.00",
        "total_tax": "0.00",
        "total_price": "110.00",
        "financial_status": "paid",
        "fulfillment_status": None if version % 2 else "partial",
        "note": f"v{version}",
        "line_items": [
            {"id": 20_000 + 2 * n, "sku": "MUG", "title": "Mug", "quantity": 2, "price": "30.00"},
            {"id": 20_001 + 2 * n, "sku": "POT", "title": "Pot", "quantity": 1, "price": "50.00"},
        ],
    }


def post(client, store_id: int, payload: dict, event_id: str) -> None:
    body = json.dumps(payload).encode()
    signature = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest())
    response = client.post(
        f"/commerce/webhooks/shopify/{store_id}",
        body,
        content_type="application/json",
        headers={
            "X-Shopify-Topic": "orders/updated",
            "X-Shopify-Hmac-Sha256": signature.decode(),
            "X-Shopify-Event-Id": event_id,
        },
    )
    assert response.status_code == 200, response.content


def ingest(client, store_id: int, webhooks: int, orders: int, threads: int) -> dict:
    from kefu.commerce import webhooks as queue

    for n in range(orders):  # warm-up: create every order once
        post(client, store_id, order_payload(n, 0), f"warm-{n}")
    queue.drain()
    accepted = timed_posts(client, store_id, orders, range(webhooks), "a", 1)
    processing = drained(webhooks)
    parallel = timed_posts(client, store_id, orders, range(webhooks), "p", threads)
    drained(webhooks)
    together = alongside_worker(client, store_id, orders, webhooks)
    return {
        "webhooks": webhooks,
        "threads": threads,
        "accepted_per_second": round(webhooks / accepted, 1),
        "accepted_threads_per_second": round(webhooks / parallel, 1),
        "processed_per_second": round(webhooks / processing, 1),
        "per_second": round(webhooks / together, 1),
    }


def timed_posts(client, store_id, orders, numbers, tag: str, threads: int) -> float:
    """Seconds to post signed deliveries ``numbers`` from ``threads`` server threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    def share(part: list[int]) -> None:
        for i in part:
            post(client, store_id, order_payload(i % orders, i + 1), f"{tag}-{i}")
        if threads > 1:
            connection.close()

    parts = [list(numbers)[k::threads] for k in range(threads)]
    started = time.perf_counter()
    if threads == 1:
        share(parts[0])
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(share, parts))
    return time.perf_counter() - started


def drained(expected: int) -> float:
    from kefu.commerce import webhooks as queue
    from kefu.commerce.models import WebhookDelivery

    started = time.perf_counter()
    processed = queue.drain()
    seconds = time.perf_counter() - started
    assert processed == expected, processed
    assert not WebhookDelivery.objects.filter(processed_at__isnull=True).exists()
    return seconds


def alongside_worker(client, store_id, orders, webhooks: int) -> float:
    """Seconds from the first delivery posted (one server thread) until the last is processed
    by a worker thread draining meanwhile, as a web process and a worker would."""
    import threading

    from django.db import connection

    from kefu.commerce import webhooks as queue
    from kefu.commerce.models import WebhookDelivery

    posting = threading.Event()
    posting.set()

    def worker() -> None:
        while True:
            if queue.drain() == 0:
                if not posting.is_set():
                    break
                time.sleep(0.02)
        connection.close()

    started = time.perf_counter()
    thread = threading.Thread(target=worker)
    thread.start()
    timed_posts(client, store_id, orders, range(webhooks), "w", 1)
    posting.clear()
    thread.join()
    seconds = time.perf_counter() - started
    assert not WebhookDelivery.objects.filter(processed_at__isnull=True).exists()
    return seconds


def seed_customer(orders: int) -> tuple[int, int, int]:
    from datetime import UTC, datetime, timedelta

    from kefu.accounts.models import Agent, Role
    from kefu.commerce import actions
    from kefu.commerce.models import Store
    from kefu.conversations.models import Conversation, Inbox, InboxMembership

    store = Store.objects.create(name="Panel shop", currency="USD")
    inbox = Inbox.objects.create(name="Panel", kind="api", store=store)
    agent = Agent.objects.create(username="bench-agent", role=Role.AGENT)
    InboxMembership.objects.create(inbox=inbox, agent=agent)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for n in range(orders):
        order, _ = actions.upsert_order(
            store=store,
            data=actions.OrderData(
                external_id=f"p-{n}", number=f"#P{n}", currency="USD", total=11000,
                subtotal=11000, placed_at=start + timedelta(days=n), email="panel@example.com",
                payment_status="paid",
                lines=[actions.LineData(title="Mug", quantity=2, unit_price=3000,
                                        external_id=f"pl-{n}a"),
                       actions.LineData(title="Pot", quantity=1, unit_price=5000,
                                        external_id=f"pl-{n}b")],
            ),
        )  # fmt: skip
        actions.upsert_shipment(
            order=order, external_id=f"s-{n}", carrier="ups",
            tracking_number="1Z999AA10123456784", status="in_transit",
            events=[{"at": f"2026-11-0{d}T10:00:00Z", "status": "in_transit",
                     "location": "Louisville"} for d in (1, 2, 3)],
        )  # fmt: skip
    customer_id = order.customer_id
    conversation = Conversation.objects.create(
        inbox=inbox, customer_id=customer_id, store=store, last_message_at=start
    )
    actions.link_order(conversation=conversation, order=order, actor=None)
    return agent.pk, customer_id, conversation.pk


def timed(client, path: str, repeat: int) -> dict:
    client.get(path)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return {
        "p50_ms": round(percentile(samples, 50), 1),
        "p95_ms": round(percentile(samples, 95), 1),
    }


def child(webhooks: int, orders: int, customer_orders: int, repeat: int, threads: int) -> dict:
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from kefu.accounts.models import Agent
    from kefu.commerce.models import Store

    call_command("migrate", verbosity=0)
    # The view's pokes enqueue drain tasks (database backend) that no worker runs here: the
    # deliveries are drained below, measured apart.
    store = Store.objects.create(name="Hooks", platform="shopify", webhook_secret=SECRET)
    client = Client(HTTP_HOST="127.0.0.1")
    results: dict = {"ingest": ingest(client, store.pk, webhooks, orders, threads)}
    agent_id, customer_id, conversation_id = seed_customer(customer_orders)
    client.force_login(Agent.objects.get(pk=agent_id))
    panel = f"/commerce/customers/{customer_id}/panel?conversation={conversation_id}"
    results["panel"] = timed(client, panel, repeat)
    results["conversation view"] = timed(client, f"/c/{conversation_id}/", repeat)
    results["customer_orders"] = customer_orders
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--webhooks", type=int, default=2000)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--customer-orders", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        found = child(args.webhooks, args.orders, args.customer_orders, args.repeat, args.threads)
        print(json.dumps(found))
        return
    passed = ["--child", "--webhooks", str(args.webhooks), "--orders", str(args.orders)]
    passed += ["--customer-orders", str(args.customer_orders), "--repeat", str(args.repeat)]
    passed += ["--threads", str(args.threads)]
    print(f"Machine: {machine()}; load average {load_average()} at start\n")
    print(
        f"| engine | webhooks/s accepted (1 thread) | accepted ({args.threads} threads) "
        "| processed (drain) | end to end (1 thread + worker) "
        "| panel p50 / p95 | conversation view p50 / p95 |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for engine in args.engines.split(","):
        r = run_child(__file__, engine, POSTGRES_URL, passed, prefix="kefu-bench-commerce-")
        print(
            f"| {engine} | {r['ingest']['accepted_per_second']} "
            f"| {r['ingest']['accepted_threads_per_second']} "
            f"| {r['ingest']['processed_per_second']} | {r['ingest']['per_second']} "
            f"| {r['panel']['p50_ms']} / {r['panel']['p95_ms']} ms "
            f"| {r['conversation view']['p50_ms']} / {r['conversation view']['p95_ms']} ms |"
        )


if __name__ == "__main__":
    main()
