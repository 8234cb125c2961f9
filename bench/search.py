"""Search latency and indexing cost over 1,000,000 messages (issue: search).

For each engine (SQLite FTS5, PostgreSQL full text), on a fresh database:
1. bulk-load a realistic corpus: 1,000,000 messages in English (real tweets from
   ../shared/data/twcs-sample and the Bitext support queries), Spanish, German, French and
   Portuguese (../shared/data/tickets-synthetic-multilang), Simplified and Traditional Chinese,
   Arabic and Japanese (generated from phrase lists, with the spelling variants people type),
   with order and tracking numbers, over ~330,000 conversations, 200,000 customers, 12 inboxes;
2. index it with ``kefu.search.index.reindex_all`` (the `kefu search reindex` path): cost per
   message in bulk;
3. the cost per message of indexing on the write path, both ways: inside the writer's
   transaction (``index_messages``) and after commit (``ensure_indexed``), against the same
   write without search;
4. query latency through ``kefu.search.service.search`` (everything an API call does besides
   HTTP: exact lookups, full text, ranking, grouping, scoping through the selectors, snippets),
   top 20, for English, Chinese and Arabic word queries and identifier lookups (emails, phones
   in several formats, conversation and order numbers), as an admin (every inbox) and as an
   agent who sees 4 of the 12 inboxes; p50/p95/max per kind.

Usage: python bench/search.py [--engines sqlite,postgres] [--messages 1000000] [--rounds 5]
       [--record]
       python bench/search.py --requery [--rounds 5]   (PostgreSQL query latency again, on the
       database the last run left: the load and indexing are not repeated)   (append the figures to bench/RESULTS.md, section "## Search (bench/search.py)")

The ingest cost of search: ``python bench/search.py --ingest [--repeats 2] [--seconds 15]`` runs
the foundation's ingest benchmark (bench/ingest.py: HTTP, single messages and 500-message
batches, wrk) with ``KEFU_SEARCH_INDEXING`` off and on, alternating, per engine, and reports
the rates side by side with how many of the stored messages were indexed when the server
stopped. Needs wrk. ``--record`` writes them under "### Ingest with search on and off".
"""

# ruff: noqa: E501 (phrase lists and report rows read better unwrapped)
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA, ROOT, machine, percentile, recreate_postgres, temp_var_dir

POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/kefu_bench_search"
SEED = 7
INBOXES = 12
SCOPED_INBOXES = 4
START = datetime(2025, 11, 1, tzinfo=UTC)
DAYS = 365

# --- generated languages -----------------------------------------------------------------------
# fmt: off
ZH_PRODUCTS = ["耳机", "充电器", "手机壳", "蓝牙音箱", "运动鞋", "连衣裙", "咖啡机", "电动牙刷", "平板电脑", "机械键盘", "行李箱", "保温杯", "羽绒服", "智能手表", "数据线", "台灯"]
ZH_PROBLEMS = ["还没到", "坏了", "尺寸不对", "颜色不对", "少发了一件", "包装破损", "无法开机", "充不进电", "有划痕", "发错货了", "一直没有物流更新", "质量太差"]
ZH_REQUESTS = ["请尽快处理", "我要退款", "我要换货", "请帮我查一下物流", "什么时候发货", "可以开发票吗", "请联系快递", "我要取消订单", "运费谁出", "可以补发吗"]
ZH_TEMPLATES = ["你好，我买的{p}{x}，订单号{o}，{r}。", "{p}{x}！{r}，谢谢。", "订单 {o} 的{p}{x}，已经等了{n}天了，{r}。", "客服你好，{r}？我的{p}{x}。"]
ZH_HANT = dict(
    pair.split("=")
    for pair in ["耳机=耳機", "充电器=充電器", "手机壳=手機殼", "蓝牙音箱=藍牙音箱", "运动鞋=運動鞋", "连衣裙=連衣裙", "咖啡机=咖啡機", "电动牙刷=電動牙刷", "平板电脑=平板電腦", "机械键盘=機械鍵盤", "行李箱=行李箱", "保温杯=保溫杯", "羽绒服=羽絨服", "智能手表=智能手錶", "数据线=數據線", "台灯=檯燈", "还没到=還沒到", "坏了=壞了", "尺寸不对=尺寸不對", "颜色不对=顏色不對", "少发了一件=少發了一件", "包装破损=包裝破損", "无法开机=無法開機", "充不进电=充不進電", "有划痕=有劃痕", "发错货了=發錯貨了", "一直没有物流更新=一直沒有物流更新", "质量太差=質量太差", "请尽快处理=請盡快處理", "我要退款=我要退款", "我要换货=我要換貨", "请帮我查一下物流=請幫我查一下物流", "什么时候发货=什麼時候發貨", "可以开发票吗=可以開發票嗎", "请联系快递=請聯繫快遞", "我要取消订单=我要取消訂單", "运费谁出=運費誰出", "可以补发吗=可以補發嗎"]
)
ZH_HANT_TEMPLATES = ["你好，我買的{p}{x}，訂單號{o}，{r}。", "{p}{x}！{r}，謝謝。", "訂單 {o} 的{p}{x}，已經等了{n}天了，{r}。"]
AR_PRODUCTS = ["سماعات", "شاحن", "هاتف", "حذاء رياضي", "فستان", "ساعة ذكية", "حقيبة سفر", "ماكينة قهوة", "لوحة مفاتيح", "غسالة", "نظارة شمسية", "عطر"]
AR_PROBLEMS = ["لم يصل بعد", "وصل مكسورا", "المقاس غير مناسب", "اللون مختلف", "لا يعمل", "ناقص قطعة", "التغليف ممزق", "تأخر الشحن كثيرا"]
AR_REQUESTS = ["أريد استرجاع المبلغ", "أريد استبدال المنتج", "أين طلبي", "متى يصل الطلب", "أرجو الرد بسرعة", "أريد إلغاء الطلب", "أرسلوا لي فاتورة", "من يدفع الشحن"]
AR_TEMPLATES = ["مرحبا، {p} {x}، رقم الطلب {o}. {r}؟", "السلام عليكم، طلبت {p} و{x}. {r}.", "{r}! الطلب {o}: {p} {x} منذ {n} أيام.", "مرحباً، {p} {x}. {r} من فضلكم."]
JA_TEMPLATES = ["注文番号{o}の{p}がまだ届きません。確認をお願いします。", "{p}が壊れていました。返品したいです。", "{p}のサイズが合いません。交換できますか？"]
JA_PRODUCTS = ["イヤホン", "充電器", "スマートフォン", "スニーカー", "コーヒーメーカー", "腕時計"]
EN_FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth", "William", "Susan", "Richard", "Jessica", "Joseph", "Sarah"]
EN_LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson"]
ZH_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
ZH_GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛"]
AR_NAMES = ["أحمد", "محمد", "فاطمة", "علي", "عائشة", "يوسف", "مريم", "خالد", "نور", "عمر"]
AR_FAMILY = ["العتيبي", "القحطاني", "الشمري", "الحربي", "الدوسري", "المطيري", "الزهراني"]
EU_NAMES = ["María García", "José Fernández", "Jürgen Müller", "Sören Weiß", "François Lefèvre", "Zoë Dupont", "João Gonçalves", "Ana Björk", "Łukasz Nowak"]

# --- queries ---------------------------------------------------------------------------------

EN_QUERIES = ["refund", "password", "delivery late", "charged twice", "cancel subscription", "battery", "iphone update", "wifi", "track my package", "damaged", "customer service", "account locked", "promo code", "shipping address", "invoice", "flight delayed", "internet outage", "never arrived", "exchange", "gift card"]
ZH_QUERIES = ["退款", "物流", "耳机坏了", "充电器", "尺寸不对", "发票", "取消订单", "运费", "退貨", "藍牙音箱", "包装破损", "什么时候发货", "换货", "机械键盘", "質量太差", "羽绒服", "无法开机", "快递", "訂單號", "号"]
AR_QUERIES = ["استرجاع", "الطلب", "أين طلبي", "الشحن", "سماعات", "فاتورة", "إلغاء", "مكسور", "اين", "المقاس", "ساعه ذكيه", "حقيبة", "مرحبا", "الرد بسرعة", "القهوة", "عطر", "استبدال", "الفاتوره", "لا يعمل", "السلام عليكم"]

# fmt: on


def _load_texts() -> dict[str, list[str]]:
    with open(DATA / "twcs-sample" / "twcs_first5001.csv", newline="") as f:
        tweets = [r["text"] for r in csv.DictReader(f) if r["text"]]
    bitext_path = (
        DATA / "bitext-customer-support" / "Bitext_Sample_Customer_Support_Training_Dataset.csv"
    )
    with open(bitext_path, newline="") as f:
        bitext = list(csv.DictReader(f))
    tickets: list[dict] = []
    for name in ("tickets-v3-multilang.sample.csv", "tickets-german-normalized.csv"):
        with open(DATA / "tickets-synthetic-multilang" / name, newline="") as f:
            tickets.extend(csv.DictReader(f))
    return {
        "tweets": tweets,
        "queries": [r["instruction"] for r in bitext],
        "answers": [r["response"] for r in bitext],
        "tickets": [r["body"] for r in tickets if r.get("body") and r.get("language") != "en"],
    }


class Corpus:
    """Deterministic message texts in the mix the bench needs."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.texts = _load_texts()
        self.orders: list[str] = []

    def order(self) -> str:
        rng = self.rng
        if rng.random() < 0.25:
            number = f"{rng.randint(100, 999)}-{rng.randint(10**6, 10**7 - 1)}-{rng.randint(10**6, 10**7 - 1)}"
        else:
            number = str(rng.randint(1_000_000, 9_999_999))
        if len(self.orders) < 5000:
            self.orders.append(number)
        return number

    def inbound(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.27:
            text = rng.choice(self.texts["tweets"])
        elif roll < 0.50:
            text = rng.choice(self.texts["queries"])
        elif roll < 0.66:
            text = rng.choice(self.texts["tickets"])[:600]
        elif roll < 0.76:
            text = self._zh(rng.choice(ZH_TEMPLATES), lambda s: s)
        elif roll < 0.81:
            text = self._zh(rng.choice(ZH_HANT_TEMPLATES), lambda s: ZH_HANT.get(s, s))
        elif roll < 0.95:
            text = self._ar()
        else:
            text = rng.choice(JA_TEMPLATES).format(p=rng.choice(JA_PRODUCTS), o=self.order())
        if rng.random() < 0.15:
            text += f" Order #{self.order()}"
        if rng.random() < 0.04:
            text += f" tracking 1Z{rng.randint(10**15, 10**16 - 1)}"
        return text

    def _zh(self, template: str, script) -> str:  # type: ignore[no-untyped-def]
        rng = self.rng
        return template.format(
            p=script(rng.choice(ZH_PRODUCTS)),
            x=script(rng.choice(ZH_PROBLEMS)),
            r=script(rng.choice(ZH_REQUESTS)),
            o=self.order(),
            n=rng.randint(2, 20),
        )

    def _ar(self) -> str:
        rng = self.rng
        text = rng.choice(AR_TEMPLATES).format(
            p=rng.choice(AR_PRODUCTS),
            x=rng.choice(AR_PROBLEMS),
            r=rng.choice(AR_REQUESTS),
            o=self.order(),
            n=rng.randint(2, 20),
        )
        # The variants people type: no hamza, taa marbuta as haa, tatweel, some diacritics.
        if rng.random() < 0.3:
            text = text.replace("أ", "ا").replace("إ", "ا")
        if rng.random() < 0.2:
            text = text.replace("ة ", "ه ")
        if rng.random() < 0.1:
            text = text.replace("مرحبا", "مـرحـبـا").replace("شكرا", "شُكْرًا")
        return text

    def outbound(self) -> str:
        return self.rng.choice(self.texts["answers"])[:700]

    def note(self) -> str:
        rng = self.rng
        return rng.choice(
            [
                f"Customer called about order {self.order()}, promised a callback.",
                "VIP customer, escalate to the team lead.",
                "已联系仓库，明天补发。",
                "تم التواصل مع شركة الشحن.",
                "Refund approved by finance.",
            ]
        )

    def name(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.5:
            return f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}"
        if roll < 0.72:
            return rng.choice(ZH_SURNAMES) + "".join(rng.sample(ZH_GIVEN, rng.randint(1, 2)))
        if roll < 0.9:
            return f"{rng.choice(AR_NAMES)} {rng.choice(AR_FAMILY)}"
        return rng.choice(EU_NAMES)


# --- the child process: one engine ---------------------------------------------------------------


def child(engine: str, messages: int, rounds: int) -> dict:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    rng = random.Random(SEED)
    result: dict = {"engine": engine, "messages": messages}
    started = time.perf_counter()
    world = load_corpus(rng, messages)
    result["load_seconds"] = round(time.perf_counter() - started, 1)
    print(f"[{engine}] loaded in {result['load_seconds']} s", file=sys.stderr, flush=True)

    from kefu.search.index import reindex_all

    started = time.perf_counter()
    indexed, customers = reindex_all(batch=5000)
    seconds = time.perf_counter() - started
    result["reindex_seconds"] = round(seconds, 1)
    result["reindex_us_per_row"] = round(seconds / (indexed + customers) * 1e6, 1)
    print(
        f"[{engine}] reindexed {indexed}+{customers} in {seconds:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    result["write_path"] = write_path_cost(world, rng)
    print(f"[{engine}] write path {result['write_path']}", file=sys.stderr, flush=True)
    result["queries"] = query_latency(world, rng, rounds)
    result["sizes"] = index_sizes(engine)
    return result


def load_corpus(rng: random.Random, total: int) -> dict:
    """Bulk-insert stores, inboxes, agents, customers, identities, conversations, messages."""
    from django.db import connection, transaction

    from kefu.accounts.models import Agent
    from kefu.commerce.models import Store
    from kefu.conversations.models import Conversation, Inbox, InboxMembership, Message
    from kefu.customers.models import Customer, Identity

    corpus = Corpus(rng)
    stores = [
        Store.objects.create(name=n, country=c)
        for n, c in (("US shop", "US"), ("CN shop", "CN"), ("SA shop", "SA"))
    ]
    kinds = ["email", "chat", "whatsapp", "marketplace", "telegram", "api"]
    inboxes = [
        Inbox.objects.create(name=f"Inbox {i}", kind=kinds[i % len(kinds)], store=stores[i % 3])
        for i in range(INBOXES)
    ]
    admin = Agent.objects.create(username="bench-admin", is_superuser=True, role="admin")
    agent = Agent.objects.create(username="bench-agent")
    for inbox in inboxes[:SCOPED_INBOXES]:
        InboxMembership.objects.create(inbox=inbox, agent=agent)
    assignees = [Agent.objects.create(username=f"bench-{i}").pk for i in range(8)]

    n_customers = max(10, total // 5)
    n_conversations = max(10, total // 3)
    people = []
    identities = []
    region_prefix = {"US": "+1415", "CN": "+86138", "SA": "+96650"}
    for pk in range(1, n_customers + 1):
        region = rng.choice(list(region_prefix))
        phone = region_prefix[region] + f"{pk * 7919 % 10**7:07d}"  # unique per customer
        name = corpus.name()
        email = _email(name, pk, rng)
        people.append({"id": pk, "name": name, "email": email, "phone": phone})
        identities.append({"id": 2 * pk - 1, "customer_id": pk, "kind": "email", "value": email})
        identities.append({"id": 2 * pk, "customer_id": pk, "kind": "phone", "value": phone})
    step = timedelta(days=DAYS) / total
    conversations = []
    for pk in range(1, n_conversations + 1):
        conversations.append(
            {
                "id": pk,
                "inbox_id": rng.choice(inboxes).pk,
                "customer_id": rng.randint(1, n_customers),
                "status": rng.choice(["new", "open", "open", "pending", "solved", "closed"]),
                "assignee_id": rng.choice([None, *assignees]),
                "subject": "",
                "last_message_at": START,
                "message_count": 0,
            }
        )
    messages = []
    for pk in range(1, total + 1):
        centre = pk * n_conversations // total
        conv = conversations[min(n_conversations, max(1, centre + rng.randint(-40, 40))) - 1]
        roll = rng.random()
        direction, text = ("inbound", corpus.inbound())
        if roll > 0.95:
            direction, text = ("note", corpus.note())
        elif roll > 0.72:
            direction, text = ("outbound", corpus.outbound())
        sent_at = START + step * pk
        conv["last_message_at"] = sent_at
        conv["message_count"] += 1
        if not conv["subject"]:
            conv["subject"] = text[:80]
        messages.append(
            {
                "id": pk,
                "conversation_id": conv["id"],
                "inbox_id": conv["inbox_id"],
                "direction": direction,
                "author_kind": "customer" if direction == "inbound" else "agent",
                "text": text,
                "sent_at": sent_at,
                "delivery_status": "received",
            }
        )
    with transaction.atomic():
        bulk_insert(Customer, people)
        bulk_insert(Identity, identities)
        bulk_insert(Conversation, conversations)
        bulk_insert(Message, messages)
    if connection.vendor == "postgresql":
        from django.core.management.color import no_style

        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(
                no_style(), [Customer, Identity, Conversation, Message]
            ):
                cursor.execute(sql)
            cursor.execute("ANALYZE")
    return {
        "admin": admin.pk,
        "agent": agent.pk,
        "inboxes": [i.pk for i in inboxes],
        "people": people[:: max(1, n_customers // 2000)],
        "conversations": n_conversations,
        "orders": corpus.orders,
        "corpus": corpus,
    }


def _email(name: str, pk: int, rng: random.Random) -> str:
    """Addresses as people have them: first.last + digits, QQ numbers, initials."""
    if name.isascii():
        first, _, last = name.lower().partition(" ")
        local = rng.choice([f"{first}.{last}{pk}", f"{first[0]}{last}{pk}", f"{first}{pk}"])
        return f"{local}@{rng.choice(['gmail.example', 'outlook.example', 'shop.example'])}"
    if any("\u4e00" <= ch <= "\u9fff" for ch in name):
        return f"{100000 + pk * 37}@qq.example"
    return f"{rng.choice(['ahmed', 'm', 'info', 'sales'])}{pk}@{rng.choice(['example.sa', 'mail.example.ae'])}"


def bulk_insert(model, rows: list[dict]) -> None:  # type: ignore[no-untyped-def]
    """Raw multi-row inserts (COPY on PostgreSQL) with every column's default filled in."""
    from django.db import connection

    fields = [f for f in model._meta.concrete_fields]
    columns = [f.column for f in fields]
    prepared = []
    for row in rows:
        values = []
        for f in fields:
            value = (
                row[f.attname]
                if f.attname in row
                else (row.get(f.name) if f.name in row else f.get_default())
            )
            if value is None and f.attname in ("created_at", "updated_at"):
                value = START
            values.append(f.get_db_prep_save(value, connection))
        prepared.append(values)
    table = connection.ops.quote_name(model._meta.db_table)
    cols = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            raw = cursor.cursor
            with raw.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for values in prepared:
                    copy.write_row([_pg(v) for v in values])
        else:
            marks = ", ".join(["%s"] * len(columns))
            insert = f"INSERT INTO {table} ({cols}) VALUES ({marks})"
            for start in range(0, len(prepared), 20_000):
                cursor.executemany(insert, prepared[start : start + 20_000])


def _pg(value):  # type: ignore[no-untyped-def]
    # Django's JSON adapter object is not understood by COPY's text format.
    adapted = getattr(value, "adapted", None)
    if adapted is not None:
        return json.dumps(adapted)
    if hasattr(value, "obj"):
        return json.dumps(value.obj)
    return value


def write_path_cost(world: dict, rng: random.Random, samples: int = 1500) -> dict:
    """Per-message cost of indexing on the write path, in the writer's transaction and after
    commit, against the same write without search: a message insert in its own transaction,
    its event emitted. The three ways alternate message by message, so a busy machine slows
    them alike; medians are reported."""
    from django.db import transaction

    from kefu.conversations.models import Conversation, Message
    from kefu.core import events
    from kefu.search import index

    corpus: Corpus = world["corpus"]
    conversations = list(
        Conversation.objects.filter(pk__lte=2000).only("pk", "inbox_id", "customer_id")
    )
    from kefu.search import subscribers as search_subscribers

    subscribers = list(events._subscribers.get("message.received", []))
    # Search's own subscriber only: the other apps' (workspace pushes, automation) are not
    # search's cost, and are left out of every mode alike.
    searching = [h for h in subscribers if h is search_subscribers._new_message]
    timings: dict[str, list[float]] = {"none": [], "in-transaction": [], "after-commit": []}

    def write(mode: str) -> float:
        conversation = rng.choice(conversations)
        text = corpus.inbound()
        # The subscribers are what "after commit" costs; without them nothing is indexed.
        events._subscribers["message.received"] = searching if mode == "after-commit" else []
        started = time.perf_counter()
        with transaction.atomic():
            message = Message.objects.create(
                conversation=conversation, inbox_id=conversation.inbox_id, direction="inbound",
                author_kind="customer", text=text, sent_at=datetime.now(UTC),
            )  # fmt: skip
            if mode == "in-transaction":
                index.index_messages([message])
            events.emit("message.received", message_id=message.pk, conversation_id=conversation.pk)
        return (time.perf_counter() - started) * 1e6

    try:
        for _ in range(samples):
            for mode in timings:
                timings[mode].append(write(mode))
    finally:
        events._subscribers["message.received"] = subscribers
    median = {mode: percentile(values, 50) for mode, values in timings.items()}
    return {
        "write_us": round(median["none"], 1),
        "in_transaction_extra_us": round(median["in-transaction"] - median["none"], 1),
        "after_commit_extra_us": round(median["after-commit"] - median["none"], 1),
    }


def query_latency(world: dict, rng: random.Random, rounds: int) -> dict:
    from kefu.accounts.models import Agent
    from kefu.search.service import search

    people = world["people"]
    identifier_queries = []
    for person in rng.sample(people, 10):
        identifier_queries.append(person["email"])
        identifier_queries.append(person["email"].upper())
        phone = person["phone"]
        identifier_queries.append(phone)
        identifier_queries.append(_formatted(phone))
    for _ in range(10):
        identifier_queries.append(f"#{rng.randint(1, world['conversations'])}")
    for number in rng.sample(world["orders"], 20):
        identifier_queries.append(number if "-" in number else f"#{number}")
    kinds = {
        "english": EN_QUERIES,
        "chinese": ZH_QUERIES,
        "arabic": AR_QUERIES,
        "identifier": identifier_queries,
    }
    out: dict = {}
    for who in ("admin", "agent"):
        agent = Agent.objects.get(pk=world[who])
        for q in EN_QUERIES[:5]:  # warm-up: caches, prepared plans
            search(agent=agent, q=q)
        for kind, queries in kinds.items():
            times, hits = [], 0
            for _ in range(rounds):
                for q in queries:
                    agent = Agent.objects.get(pk=world[who])  # per request, as the API does
                    started = time.perf_counter()
                    results = search(agent=agent, q=q, limit=20)
                    times.append((time.perf_counter() - started) * 1000)
                    hits += bool(results.conversations or results.customers)
            out[f"{kind}/{who}"] = {
                "n": len(times),
                "p50_ms": round(percentile(times, 50), 1),
                "p95_ms": round(percentile(times, 95), 1),
                "max_ms": round(max(times), 1),
                "found_share": round(hits / len(times), 2),
            }
            print(f"  {kind}/{who}: {out[f'{kind}/{who}']}", file=sys.stderr, flush=True)
    return out


def _formatted(phone: str) -> str:
    if phone.startswith("+1"):
        return f"({phone[2:5]}) {phone[5:8]}-{phone[8:]}"
    if phone.startswith("+86"):
        return f"0086 {phone[3:6]} {phone[6:10]} {phone[10:]}"
    return f"{phone[:4]} {phone[4:6]} {phone[6:9]} {phone[9:]}"


def index_sizes(engine: str) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        if engine == "postgresql":
            cursor.execute(
                "SELECT pg_total_relation_size('search_messageentry'), "
                "pg_relation_size('search_messageentry_document'), pg_database_size(current_database())"
            )
            table, gin, database = cursor.fetchone()
            return {
                "entries_mb": round(table / 2**20),
                "gin_mb": round(gin / 2**20),
                "database_mb": round(database / 2**20),
            }
        cursor.execute("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
        database = cursor.fetchone()[0]
        cursor.execute("SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'search_%'")
        search_bytes = cursor.fetchone()[0] or 0
        return {"search_mb": round(search_bytes / 2**20), "database_mb": round(database / 2**20)}


def requery(rounds: int) -> dict:
    """Query latency again on the PostgreSQL database a full run left behind (POSTGRES_URL):
    the queries are sensitive to the machine's load, the load and index are not."""
    import re

    import django

    django.setup()
    from django.db.models import Max

    from kefu.accounts.models import Agent
    from kefu.conversations.models import Conversation, Message
    from kefu.customers.models import Identity

    rng = random.Random(SEED)
    emails = dict(
        Identity.objects.filter(kind="email", pk__lte=20_000).values_list("customer_id", "value")
    )
    phones = dict(
        Identity.objects.filter(kind="phone", pk__lte=20_000).values_list("customer_id", "value")
    )
    people = [{"email": e, "phone": phones[c]} for c, e in emails.items() if c in phones]
    texts = Message.objects.filter(pk__lte=50_000, text__contains="Order #").values_list(
        "text", flat=True
    )
    orders = sorted({m for t in texts for m in re.findall(r"Order #(\S+)", t)})
    world = {
        "admin": Agent.objects.get(username="bench-admin").pk,
        "agent": Agent.objects.get(username="bench-agent").pk,
        "people": people,
        "conversations": Conversation.objects.aggregate(n=Max("pk"))["n"],
        "orders": orders,
    }
    return {"engine": "postgresql", "queries": query_latency(world, rng, rounds)}


# --- the parent: run each engine in its own process, report -----------------------------------------


def run_engine(engine: str, args: argparse.Namespace) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    var_dir = temp_var_dir("kefu-bench-search-")
    env.update(
        {
            "KEFU_VAR_DIR": str(var_dir),
            "KEFU_LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "kefu.config.settings",
        }
    )
    if engine == "postgresql":
        recreate_postgres(POSTGRES_URL)
        env["KEFU_DATABASE_URL"] = POSTGRES_URL
    command = [
        sys.executable,
        __file__,
        "--child",
        engine,
        "--messages",
        str(args.messages),
        "--rounds",
        str(args.rounds),
    ]
    # Progress and errors stream to our stderr; the figures come back as JSON on stdout.
    output = subprocess.run(
        command, env=env, check=True, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def report(results: list[dict]) -> str:
    lines = [
        "## Search (bench/search.py)",
        "",
        f"Machine: {machine()}. {time.strftime('%Y-%m-%d')}. **Provisional**: measured while other",
        "helpers' tests and benchmarks shared the 2 cores; rerun on a quiet machine for release figures.",
        "",
        "Query latency through `kefu.search.service.search` (exact lookups + full text + ranking +",
        "grouping + scoping through the selectors + snippets), top 20, milliseconds:",
        "",
        "| engine | messages | kind | who | n | p50 | p95 | max | found |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        for key, q in r["queries"].items():
            kind, who = key.split("/")
            lines.append(
                f"| {r['engine']} | {r['messages']:,} | {kind} | {who} | {q['n']} | {q['p50_ms']} | "
                f"**{q['p95_ms']}** | {q['max_ms']} | {q['found_share']:.0%} |"
            )
    lines += [
        "",
        "Indexing cost:",
        "",
        "| engine | bulk reindex | per row (bulk) | plain message write | + index in the transaction | + index after commit | index size |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        w = r["write_path"]
        lines.append(
            f"| {r['engine']} | {r['reindex_seconds']} s | {r['reindex_us_per_row']} µs | {w['write_us']} µs | "
            f"+{w['in_transaction_extra_us']} µs | +{w['after_commit_extra_us']} µs | {r['sizes']} |"
        )
    return "\n".join(lines) + "\n"


def record(section: str) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    marker = "## Search (bench/search.py)"
    if marker in text:
        head, _, rest = text.partition(marker)
        following = rest.find("\n## ")
        tail = rest[following + 1 :] if following >= 0 else ""
        # The ingest subsection (--ingest) is recorded separately: keep it.
        body = rest[:following] if following >= 0 else rest
        kept = body.find("### Ingest with search on and off")
        if kept >= 0:
            section = section + "\n" + body[kept:].rstrip("\n") + "\n"
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


# --- ingest with search indexing on and off (bench/ingest.py, unchanged) ----------------------


INDEXED_CODE = """
from kefu.conversations.models import Message
from kefu.search.models import MessageEntry
print(Message.objects.count(), MessageEntry.objects.count())
"""


def ingest_on_off(args: argparse.Namespace) -> list[dict]:
    """bench/ingest.py's bench_engine with KEFU_SEARCH_INDEXING off/on, alternating."""
    import ingest  # bench/ingest.py

    mode = {"indexing": "on"}
    original_env, original_count = ingest.kefu_env, ingest.count_messages

    def kefu_env(var_dir: Path, database_url: str | None) -> dict[str, str]:
        env = original_env(var_dir, database_url)
        env["KEFU_SEARCH_INDEXING"] = mode["indexing"]
        return env

    def count_messages(env: dict[str, str]) -> int:
        out = ingest.run_kefu(env, "shell", "-c", INDEXED_CODE, capture=True)
        stored, indexed = (int(n) for n in out.splitlines()[-1].split())
        mode["indexed"] = indexed
        return stored

    ingest.kefu_env, ingest.count_messages = kefu_env, count_messages
    ns = argparse.Namespace(
        seconds=args.seconds, workers=2, threads=16, interface="wsgi",
        phases="single,batch", ports="18400-18499", paced_rate=0,
    )  # fmt: skip
    texts = ingest.load_texts()
    runs = []
    try:
        for _ in range(args.repeats):
            for engine in [e.strip() for e in args.engines.split(",")]:
                engine = "postgres" if engine.startswith("postgres") else "sqlite"
                for indexing in ("off", "on"):
                    mode["indexing"] = indexing
                    r = ingest.bench_engine(engine, ns, texts)
                    run = {
                        "engine": engine,
                        "indexing": indexing,
                        "single": round(r["single"]["rps"]),
                        "batch": round(r["batch"]["rps"] * ingest.BATCH),
                        "errors": r["single"]["non_2xx"] + r["batch"]["non_2xx"],
                        "stored": r["stored"],
                        "indexed": mode["indexed"],
                        "load": f"{r['load_before']} → {r['load_after']}",
                    }
                    print(run, file=sys.stderr, flush=True)
                    runs.append(run)
    finally:
        ingest.kefu_env, ingest.count_messages = original_env, original_count
    return runs


def ingest_report(runs: list[dict], args: argparse.Namespace) -> str:
    lines = [
        "### Ingest with search on and off (bench/ingest.py through bench/search.py --ingest)",
        "",
        f"Machine: {machine()}. {time.strftime('%Y-%m-%d')}. Measured while other work ran on "
        "the machine.",
        f"`python bench/search.py --ingest --repeats {args.repeats} --seconds {args.seconds}`: "
        "bench/ingest.py's server (granian WSGI, 2 workers x 16 threads) and wrk (32 connections),",
        "single messages then 500-message batches, off and on alternating; msg/s.",
        "",
        "| engine | search indexing | single msg/s | batch msg/s | non-2xx | indexed / stored at stop | load avg |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        lines.append(
            f"| {r['engine']} | {r['indexing']} | {r['single']} | {r['batch']} | {r['errors']} | "
            f"{r['indexed']:,} / {r['stored']:,} | {r['load']} |"
        )
    lines.append("")
    # Each "on" run against the "off" run just before it (same engine): the machine's load
    # drifts between pairs far more than within one.
    for engine in dict.fromkeys(r["engine"] for r in runs):
        mine = [r for r in runs if r["engine"] == engine]
        pairs = [(a, b) for a, b in pairwise(mine)
                 if (a["indexing"], b["indexing"]) == ("off", "on")]  # fmt: skip
        for phase in ("single", "batch"):
            changes = ", ".join(f"{b[phase] / a[phase] - 1:+.0%}" for a, b in pairs)
            lines.append(f"- {engine}, {phase}: on against off, pair by pair: {changes}")
    return "\n".join(lines) + "\n"


def record_ingest(section: str) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text()
    marker = "### Ingest with search on and off"
    if marker in text:
        head, _, rest = text.partition(marker)
        following = rest.find("\n## ")
        tail = rest[following + 1 :] if following >= 0 else ""
        text = head.rstrip("\n") + "\n\n" + section + ("\n" + tail if tail else "")
    else:
        search = "## Search (bench/search.py)"
        if search in text:
            head, _, rest = text.partition(search)
            following = rest.find("\n## ")
            body, tail = (rest[:following], rest[following:]) if following >= 0 else (rest, "")
            text = head + search + body.rstrip("\n") + "\n\n" + section + tail
        else:
            text = text.rstrip("\n") + "\n\n" + search + "\n\n" + section
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--ingest", action="store_true", help="ingest rate, indexing off/on")
    parser.add_argument(
        "--requery", action="store_true", help="query latency again on the last PostgreSQL run"
    )
    parser.add_argument("--repeats", type=int, default=2, help="--ingest: off/on pairs")
    parser.add_argument("--seconds", type=int, default=15, help="--ingest: per phase")
    args = parser.parse_args()
    if args.requery:
        env = {"KEFU_DATABASE_URL": POSTGRES_URL, "KEFU_LOG_LEVEL": "WARNING"}
        os.environ.update(env | {"DJANGO_SETTINGS_MODULE": "kefu.config.settings"})
        sys.path.insert(0, str(ROOT))
        print(json.dumps(requery(args.rounds), default=str))
        return
    if args.ingest:
        section = ingest_report(ingest_on_off(args), args)
        print(section)
        if args.record:
            record_ingest(section)
        return
    if args.child:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(child(args.child, args.messages, args.rounds)))
        return
    engines = [
        "postgresql" if e.strip().startswith("postgres") else "sqlite"
        for e in args.engines.split(",")
    ]
    results = [run_engine(engine, args) for engine in engines]
    section = report(results)
    print(section)
    if args.record:
        record(section)


if __name__ == "__main__":
    main()
