"""Automation cost per inbound message (issue: automation), with 200 active rules and 50 SLA
policies.

For each engine (SQLite; PostgreSQL with --engines sqlite,postgres), in a fresh database:
1. evaluation: per message, in memory, what automation decides: facts, the 200
   ``message_received`` rules in order, the SLA policy among 50, the clock on business hours
   with public holidays (target: under 2 ms per message);
2. drain: the intake's bulk pass over messages already stored (SLA clock rows, due times,
   rule executions and their tag actions, one transaction per batch), messages per second;
3. ingest: the pipeline (``receive_message`` in process, no HTTP) with automation's ingest
   handlers off, on as shipped (a poke: one deferred drain task per 0.2 s), and on inline (the
   drain after every message, as a synchronous design would do), messages per second.

Messages are real tweets from ../shared/data/twcs-sample plus Chinese and Arabic texts.

Usage: python bench/rules.py [--messages 2000] [--engines sqlite,postgres]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA, machine, percentile, run_child

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/kefu_bench_rules"
RULES = 200
POLICIES = 50
EXTRA_TEXTS = [
    "你好，我的订单 {n} 已经十天了还没到，物流一直没有更新。",
    "收到的耳机是坏的，订单号 {n}，请尽快退款。",
    "مرحبا، أين طلبي رقم {n}؟ مرّ عشرة أيام ولم يصل.",
    "أريد إرجاع المنتج من الطلب {n} لأن المقاس غير مناسب.",
]
KEYWORDS = [
    "refund", "cancel", "broken", "late", "damaged", "invoice", "password", "charged",
    "退款", "坏", "物流", "إرجاع", "طلب", "outage", "delay", "wrong item", "never arrived",
]  # fmt: skip


def load_texts(limit: int = 3000) -> list[str]:
    with open(DATA / "twcs-sample" / "twcs_first5001.csv", newline="") as handle:
        texts = [r["text"] for r in csv.DictReader(handle) if r["inbound"] == "True"][:limit]
    texts += [t.format(n=100000 + i) for i in range(200) for t in EXTRA_TEXTS]
    random.Random(7).shuffle(texts)
    return texts


# --- Child process: one engine ---------------------------------------------------------------


def child(engine: str, messages: int) -> dict:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    setup = seed()
    texts = load_texts()
    return {
        "engine": engine,
        "evaluation": bench_evaluation(setup, texts),
        "drain": bench_drain(setup, texts, messages),
        "ingest": bench_ingest(setup, texts, messages),
    }


def seed() -> dict:
    from kefu.automation import actions
    from kefu.automation.models import SlaPolicy
    from kefu.commerce.models import Store
    from kefu.conversations.models import Inbox

    rng = random.Random(42)
    store = Store.objects.create(name="Bench", timezone="America/New_York", country="US")
    kinds = ["email", "chat", "whatsapp", "marketplace", "api"]
    inboxes = [Inbox.objects.create(name=k, kind=k, store=store) for k in kinds]
    SlaPolicy.objects.all().delete()
    for i in range(POLICIES - 1):
        SlaPolicy.objects.create(
            name=f"policy {i}",
            position=i,
            inbox_kinds=[rng.choice(kinds)],
            priorities=rng.sample(["low", "normal", "high", "urgent"], 2),
            intents=[rng.choice(["refund", "wismo", "complaint"])] if i % 3 else [],
            segments=["vip"] if i % 5 == 0 else [],
            first_response_seconds=rng.choice([30, 3600, 86400]),
            next_response_seconds=3600,
            resolution_seconds=45 * 3600 if i % 2 else None,
            clock=rng.choice(["business", "calendar"]),
        )
    SlaPolicy.objects.create(name="fallback", position=1000, first_response_seconds=86400)
    for i in range(RULES):
        actions.save_rule(actor=None, data=rule_spec(i, rng, inboxes))
    actions.bump_config()
    return {"inboxes": inboxes, "store": store}


def rule_spec(i: int, rng: random.Random, inboxes: list) -> dict:
    kind = i % 6
    if kind == 0:
        # Mostly words that rarely appear: a realistic rule set matches a few per message.
        words = [rng.choice(KEYWORDS)] if i % 4 == 0 else [f"zzq{i}", f"xyw{i}"]
        condition = [{"field": "text", "op": "contains", "value": words}]
    elif kind == 1:
        condition = [{"field": "text", "op": "matches", "value": rf"order\s*#?\d{{{5 + i % 4}}}"}]
    elif kind == 2:
        condition = [
            {"field": "channel", "op": "is", "value": rng.choice(["email", "chat", "marketplace"])},
            {"field": "language", "op": "in", "value": [rng.choice(["de", "fr", "ja"])]},
        ]
    elif kind == 3:
        condition = [
            {"field": "tags", "op": "contains_any", "value": [f"t{i}"]},
            {"field": "priority", "op": "at_least", "value": "high"},
        ]
    elif kind == 4:
        condition = [
            {"field": "sentiment", "op": "lt", "value": -0.8},
            {"field": "intent", "op": "is", "value": "complaint"},
        ]
    else:
        condition = [
            {"field": "segment", "op": "contains_any", "value": ["wholesale"]},
            {"field": "business_hours", "op": "is", "value": False},
        ]
    return {
        "name": f"rule {i}",
        "trigger": "message_received",
        "position": i,
        "conditions": {"all": condition},
        "actions": [{"type": "add_tags", "tags": [f"r{i % 20}"]}],
    }


def bench_evaluation(setup: dict, texts: list[str]) -> dict:
    from django.utils import timezone

    from kefu.automation import config, engine, sla
    from kefu.automation.conditions import Facts
    from kefu.automation.models import Trigger

    snapshot = config.current()
    rules = snapshot.rules_for(Trigger.MESSAGE_RECEIVED)
    assert len(rules) == RULES and len(snapshot.policies) == POLICIES
    inboxes = setup["inboxes"]
    rng = random.Random(1)
    samples, matched = [], 0
    now = timezone.now()
    for n, text in enumerate(texts[:5000]):
        inbox = inboxes[n % len(inboxes)]
        started = time.perf_counter()
        facts = Facts(
            conversation_id=n,
            inbox_id=inbox.pk,
            inbox_kind=inbox.kind,
            store_id=inbox.store_id,
            status="open",
            priority=rng.choice(["normal", "high"]),
            language=rng.choice(["en", "zh", "ar"]),
            intent=rng.choice(["", "refund", "wismo", "complaint"]),
            sentiment=rng.uniform(-1, 1),
            text=text,
            tags_loader=lambda: ["t3"],
            open_now=lambda store_id=inbox.store_id: snapshot.calendar(store_id).is_open(now),
        )
        found = engine.matching(rules, facts)
        subject = sla.Subject(
            n, inbox.pk, inbox.kind, inbox.store_id, "open", facts.priority, facts.intent
        )
        policy = sla.choose(snapshot.policies, subject)
        state = sla.ClockState(started_at=now, awaiting_since=now)
        sla.recompute(
            state,
            status="open",
            policy=policy,
            calendar=snapshot.calendar(inbox.store_id),
            now=now,
        )
        samples.append((time.perf_counter() - started) * 1000)
        matched += len(found)
    return {
        "messages": len(samples),
        "mean_ms": round(statistics.mean(samples), 4),
        "p50_ms": round(percentile(samples, 50), 4),
        "p99_ms": round(percentile(samples, 99), 4),
        "rules_matched_per_message": round(matched / len(samples), 2),
    }


def _receive(setup: dict, texts: list[str], count: int, offset: int) -> float:
    from kefu.conversations.inbound import InboundMessage
    from kefu.conversations.pipeline import receive_message

    inboxes = setup["inboxes"]
    started = time.perf_counter()
    for n in range(count):
        text = texts[(offset + n) % len(texts)]
        receive_message(
            inbox=inboxes[n % len(inboxes)],
            message=InboundMessage(
                external_id=f"b-{offset + n}",
                identities=[("email", f"c{(offset + n) % (count // 3 + 1)}@example.com")],
                text=text,
            ),
        )
    return time.perf_counter() - started


def bench_drain(setup: dict, texts: list[str], messages: int) -> dict:
    from kefu.automation import handlers, intake
    from kefu.automation.models import RuleExecution
    from kefu.core.events import unsubscribe

    for name in ("message.received", "conversation.created"):
        unsubscribe(name, handlers.on_inbound)
    _receive(setup, texts, messages, offset=0)
    started = time.perf_counter()
    seen = intake.drain()
    elapsed = time.perf_counter() - started
    return {
        "messages": seen,
        "messages_per_s": round(seen / elapsed),
        "ms_per_message": round(elapsed * 1000 / max(seen, 1), 3),
        "rule_executions": RuleExecution.objects.count(),
    }


def bench_ingest(setup: dict, texts: list[str], messages: int) -> dict:
    from django.conf import settings

    from kefu.automation import handlers, intake
    from kefu.core.events import subscribe, unsubscribe

    results = {}
    offset = 10 * messages
    for mode in ("off", "poke", "inline", "off", "poke"):
        for name in ("message.received", "conversation.created"):
            unsubscribe(name, handlers.on_inbound)
            if mode != "off":
                subscribe(name)(handlers.on_inbound)
        settings.KEFU_AUTOMATION_SYNC = mode == "inline"
        intake._next_slot = 0.0
        elapsed = _receive(setup, texts, messages, offset)
        offset += messages
        rate = messages / elapsed
        results[mode] = max(results.get(mode, 0), round(rate))
        intake.drain()  # keep the cursor current between modes (not timed)
    results["poke_vs_off"] = round(results["poke"] / results["off"], 3)
    results["inline_vs_off"] = round(results["inline"] / results["off"], 3)
    return results


# --- Parent ----------------------------------------------------------------------------------


def run_engine(engine: str, messages: int) -> dict:
    args = ["--child", engine, "--messages", str(messages)]
    return run_child(__file__, engine, POSTGRES_URL, args, prefix="kefu-bench-rules-")


def report(results: list[dict]) -> str:
    lines = [
        f"Machine: {machine()}",
        "",
        "| engine | eval mean / p50 / p99 (ms per message) | rules matched per message "
        "| drain (messages/s, ms each) | ingest off / poke / inline (messages/s) "
        "| poke vs off | inline vs off |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        e, d, i = r["evaluation"], r["drain"], r["ingest"]
        lines.append(
            f"| {r['engine']} | {e['mean_ms']} / {e['p50_ms']} / {e['p99_ms']} "
            f"| {e['rules_matched_per_message']} "
            f"| {d['messages_per_s']} ({d['ms_per_message']} ms) "
            f"| {i['off']} / {i['poke']} / {i['inline']} | {i['poke_vs_off']} "
            f"| {i['inline_vs_off']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--engines", default="sqlite")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.messages)))
        return
    results = [run_engine(engine, args.messages) for engine in args.engines.split(",")]
    print(json.dumps(results, indent=2))
    print(report(results))


if __name__ == "__main__":
    main()
