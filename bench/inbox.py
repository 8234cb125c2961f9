"""Server time of the workspace's inbox list and conversation view at scale (issue: workspace).

For each engine, in a fresh database, generates conversations and messages with SQL
(PostgreSQL: 1,000,000 conversations and 5,000,000 messages; SQLite: 200,000 and 1,000,000 by
default), five inboxes, 200,000 or 40,000 customers and 20 agents; the measuring agent is a
member of every inbox (not an admin, so every read goes through the inbox scoping), and a
quarter of the conversations are theirs. Then it times, in process through Django's test client
(the whole view: middleware, scoped queries, template), the first page and a deep cursor page
(past 20 pages) of "mine", "unassigned" and one inbox, and the conversation view; p50/p95 of
``--repeat`` requests each. The query count of each page is pinned by
tests/workspace/test_views.py.

Usage: python bench/inbox.py [--engines sqlite,postgres] [--pg-conversations 1000000]
       [--sqlite-conversations 200000] [--repeat 40]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, percentile, run_child

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/kefu_bench_inbox"
MESSAGES_PER_CONVERSATION = 5
INBOXES = 5
AGENTS = 20
TEXTS = [
    "Where is my order? It has been ten days.",
    "我的订单什么时候到？",
    "أين طلبي؟ لم يصل بعد.",
    "Quiero devolver el producto, llegó roto.",
    "Die Lieferung ist beschädigt angekommen.",
]


# --- Generation (child process) --------------------------------------------------------------


def sequence(vendor: str, count: int) -> str:
    """A FROM clause yielding i = 1..count."""
    if vendor == "postgresql":
        return f"generate_series(1, {count}) AS s(i)"
    return (
        f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {count}) "
        "SELECT i FROM s) AS s"
    )


def seconds_ago(vendor: str, expression: str) -> str:
    if vendor == "postgresql":
        return f"(now() - ({expression}) * interval '1 second')"
    return f"strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || ({expression}) || ' seconds')"


def generate(conversations: int) -> dict:
    from django.db import connection, transaction

    from kefu.accounts.models import Agent
    from kefu.conversations.models import Inbox, InboxMembership

    vendor = connection.vendor
    customers = max(conversations // 5, 1)
    inboxes = [Inbox.objects.create(name=f"Inbox {n}", kind="email") for n in range(INBOXES)]
    agents = [
        Agent.objects.create(username=f"agent{n}", display_name=f"Agent {n}") for n in range(AGENTS)
    ]
    lead = agents[0]
    for inbox in inboxes:
        InboxMembership.objects.create(inbox=inbox, agent=lead)
    first_inbox, first_agent = inboxes[0].pk, agents[0].pk
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO customers_customer (name, email, phone, language, location, notes, tags,"
            " created_at, updated_at) "
            f"SELECT 'Customer ' || i, 'c' || i || '@example.com', '', 'en', '', '', '[]', "
            f"{seconds_ago(vendor, '0')}, {seconds_ago(vendor, '0')}"
            f" FROM {sequence(vendor, customers)}"
        )
        cursor.execute("SELECT min(id) FROM customers_customer")
        first_customer = cursor.fetchone()[0]
        status = (
            "CASE WHEN i % 10 < 7 THEN 'solved' WHEN i % 10 = 7 THEN 'new' "
            "WHEN i % 10 = 8 THEN 'open' ELSE 'pending' END"
        )
        assignee = (
            f"CASE WHEN i % 4 = 0 THEN {first_agent} WHEN i % 4 = 1 THEN NULL "
            f"ELSE {first_agent} + 1 + (i % {AGENTS - 1}) END"
        )
        last = seconds_ago(vendor, f"({conversations} - i) * 2")
        cursor.execute(
            "INSERT INTO conversations_conversation (inbox_id, customer_id, subject, status,"
            " priority, intent, language, assignee_id, thread_key, last_message_at,"
            " last_message_preview, last_inbound_at, waiting_since, unread_count, message_count,"
            " created_at, updated_at) "
            # Inboxes by (i / 3), statuses by i % 10, owners by i % 4: no view comes out empty.
            f"SELECT {first_inbox} + ((i / 3) % {INBOXES}), {first_customer} + (i % {customers}),"
            f" 'Order question ' || i, {status}, 'normal', '', 'en', {assignee}, '', {last},"
            f" 'Where is my order ' || i || '?', {last},"
            f" CASE WHEN i % 10 >= 7 THEN {last} ELSE NULL END, i % 3, {MESSAGES_PER_CONVERSATION},"
            f" {last}, {last} FROM {sequence(vendor, conversations)}"
        )
        cursor.execute("SELECT min(id) FROM conversations_conversation")
        first_conversation = cursor.fetchone()[0]
        total = conversations * MESSAGES_PER_CONVERSATION
        direction = "CASE WHEN i % 5 IN (1, 3) THEN 'outbound' ELSE 'inbound' END"
        author = "CASE WHEN i % 5 IN (1, 3) THEN 'agent' ELSE 'customer' END"
        text = (
            "CASE i % 5 " + " ".join(f"WHEN {n} THEN '{t}'" for n, t in enumerate(TEXTS)) + " END"
        )
        cursor.execute(
            "INSERT INTO conversations_message (conversation_id, inbox_id, direction,"
            " author_kind, subject, text, html, language, external_id, delivery_status,"
            " delivery_error, sent_at, metadata, created_at) "
            f"SELECT {first_conversation} + ((i - 1) / {MESSAGES_PER_CONVERSATION}),"
            f" {first_inbox} + (((i - 1) / {MESSAGES_PER_CONVERSATION} + 1) % {INBOXES}),"
            f" {direction}, {author}, '', {text}, '', 'en', 'x' || i, 'received', '',"
            f" {seconds_ago(vendor, f'({total} - i) * 2')}, '{{}}', {seconds_ago(vendor, '0')}"
            f" FROM {sequence(vendor, total)}"
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {
        "lead": lead.pk,
        "inbox": first_inbox,
        "conversation": first_conversation + conversations // 2,
        "generate_s": round(time.perf_counter() - started, 1),
    }


# --- Measuring (child process) ---------------------------------------------------------------


def timed(client, path: str, repeat: int) -> dict:
    client.get(path)  # warm
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


def deep_cursor(agent, params: dict, pages: int = 20) -> str:
    from kefu.workspace import selectors

    query = selectors.ListQuery.from_params(params)
    cursor = ""
    for _ in range(pages):
        page = selectors.inbox_page(
            agent, selectors.ListQuery(**{**query.__dict__, "cursor": cursor})
        )
        cursor = page.next_cursor
    return cursor


def child(conversations: int, repeat: int) -> dict:
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from kefu.accounts.models import Agent

    call_command("migrate", verbosity=0)
    setup = generate(conversations)
    agent = Agent.objects.get(pk=setup["lead"])
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(agent)
    views = {
        "mine": {"view": "mine"},
        "unassigned": {"view": "unassigned"},
        "inbox": {"view": "all", "inbox": str(setup["inbox"])},
    }
    results: dict = {"generate_s": setup["generate_s"], "conversations": conversations}
    for name, params in views.items():
        query = "&".join(f"{k}={v}" for k, v in params.items())
        results[f"{name} first page"] = timed(client, f"/list/?{query}", repeat)
        cursor = deep_cursor(agent, params)
        results[f"{name} page 21"] = timed(client, f"/list/?{query}&cursor={cursor}", repeat)
    results["conversation view"] = timed(client, f"/c/{setup['conversation']}/", repeat)
    return results


# --- Parent ----------------------------------------------------------------------------------


def run_engine(engine: str, conversations: int, repeat: int) -> dict:
    args = ["--child", str(conversations), "--repeat", str(repeat)]
    found = run_child(__file__, engine, POSTGRES_URL, args, prefix="kefu-bench-inbox-")
    return {"engine": engine, **found}


def report(results: list[dict]) -> str:
    lines = [f"Machine: {machine()}", ""]
    for r in results:
        lines += [
            f"**{r['engine']}**: {r['conversations']:,} conversations, "
            f"{r['conversations'] * MESSAGES_PER_CONVERSATION:,} messages "
            f"(generated in {r['generate_s']} s)",
            "",
            "| page | p50 | p95 |",
            "| --- | --- | --- |",
        ]
        for name, value in r.items():
            if isinstance(value, dict):
                lines.append(f"| {name} | {value['p50_ms']} ms | {value['p95_ms']} ms |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--pg-conversations", type=int, default=1_000_000)
    parser.add_argument("--sqlite-conversations", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--child", type=int)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.repeat)))
        return
    results = []
    for engine in args.engines.split(","):
        size = args.pg_conversations if engine == "postgres" else args.sqlite_conversations
        results.append(run_engine(engine, size, args.repeat))
    print(json.dumps(results, indent=2))
    print(report(results))


if __name__ == "__main__":
    main()
