"""Inbound pipeline throughput through the HTTP API (issue: foundation).

For each engine (SQLite, PostgreSQL) on a fresh database:
1. `/healthz` rate: the same server's ceiling for a request that does one query;
2. POST /api/v1/messages, one message per request (concurrency 32, keep-alive), with wrk;
3. POST /api/v1/messages/batch, 500 messages per request, with wrk;
4. acknowledgement latency (p50/p99) of single messages at half the measured peak rate, with an
   open-loop paced client (requests are sent on schedule, so queueing shows in the figures).

Messages are realistic: texts from the real tweets in ../shared/data/twcs-sample and the
multilingual tickets in ../shared/data/tickets-synthetic-multilang (read at run time), plus
Chinese and Arabic texts; customers drawn from a pool so that about a third are new and the rest
write again into their open conversations.

Usage: python bench/ingest.py [--engines sqlite,postgres] [--seconds 15] [--workers 2]
       [--threads 16] [--interface wsgi] [--phases healthz,single,paced,batch]
Needs wrk (Debian package `wrk`) for the peak figures.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DATA,
    kefu_env,
    kefu_server,
    load_average,
    machine,
    percentile,
    port_range,
    recreate_postgres,
    run_kefu,
    temp_var_dir,
)

CONCURRENCY = 32
BATCH = 500
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/kefu_bench_ingest"

CJK_AR_TEXTS = [
    "你好，我的订单 {n} 已经十天了还没到，物流一直没有更新。",
    "请问订单 {n} 什么时候发货？我很着急。",
    "收到的耳机是坏的，订单号 {n}，请尽快处理。",
    "مرحبا، أين طلبي رقم {n}؟ مرّ عشرة أيام ولم يصل.",
    "أريد إرجاع المنتج من الطلب {n} لأن المقاس غير مناسب.",
]

SETUP = """
from kefu.accounts.actions import create_agent, create_token
from kefu.commerce.models import Store
from kefu.conversations.models import Inbox, InboxKind
store = Store.objects.create(name="Bench store", country="US")
inbox = Inbox.objects.create(name="Bench API", kind=InboxKind.API, store=store)
admin = create_agent(username="bench", password=None, role="admin")
print(inbox.pk, create_token(user=admin, name="bench")[1])
"""

ANALYZE = """
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("ANALYZE")
"""


def load_texts() -> list[str]:
    texts: list[str] = []
    with open(DATA / "twcs-sample" / "twcs_first5001.csv", newline="") as handle:
        texts += [r["text"] for r in csv.DictReader(handle) if r["inbound"] == "True"]
    with open(DATA / "tickets-synthetic-multilang" / "tickets-v3-multilang.sample.csv") as handle:
        texts += [r["body"] for r in csv.DictReader(handle) if r.get("body")][:5000]
    texts += [t.format(n=1000 + i) for i in range(400) for t in CJK_AR_TEXTS[i % 5 : i % 5 + 1]]
    return [t for t in texts if t and t.strip()]


class MessageFactory:
    """Unique external ids; customers from a pool so conversations thread realistically."""

    def __init__(self, inbox_id: int, texts: list[str], seed: int, prefix: str) -> None:
        self.inbox_id = inbox_id
        self.texts = texts
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.count = 0

    def message(self) -> dict:
        self.count += 1
        person = self.rng.randint(0, self.count // 2 + 50)  # about a third are new people
        customer: dict = {"name": f"Customer {person}", "email": f"c{person}@example.com"}
        if person % 3 == 0:
            customer["phone"] = f"+1 415 555 {person % 10000:04d}"
        return {
            "inbox_id": self.inbox_id,
            "external_id": f"{self.prefix}-{self.count}",
            "customer": customer,
            "text": self.rng.choice(self.texts)[:2000],
        }


LUA = r"""
local bodies = {}
local counter = 0
local stride = 1
function setup(thread)
  counter = counter + 1
  thread:set("offset", counter)
end
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  stride = tonumber(args[2])
  counter = tonumber(offset)
end
function request()
  local body = bodies[counter]
  counter = counter + stride
  if counter > #bodies then counter = ((counter - 1) % #bodies) + 1 end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("KEFU_BENCH_TOKEN")}, body)
end
"""


def run_wrk(
    url: str,
    seconds: int,
    token: str,
    bodies: Path | None,
    threads: int = 2,
    connections: int = CONCURRENCY,
) -> dict:
    """wrk at CONCURRENCY connections; returns requests/s, non-2xx count and wrk's CPU share.

    ``client_cpu`` is wrk's user+system CPU time over the wall time, in cores: far below
    wrk's thread count means the client was waiting on the server, not the other way round.
    """
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    env = {"PATH": "/usr/bin:/bin", "KEFU_BENCH_TOKEN": token}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA)
    if bodies is not None:
        command += ["-s", script.name, url, "--", str(bodies), str(threads)]
    else:
        command += [url]
    before = os.times()
    started = time.perf_counter()
    try:
        out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    finally:
        Path(script.name).unlink(missing_ok=True)
    after = os.times()
    result = parse_wrk(out)
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    result["client_cpu"] = cpu / (time.perf_counter() - started)
    return result


def parse_wrk(out: str) -> dict:
    result: dict = {"non_2xx": 0, "raw": out}
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(line.split()[1])
        elif line.startswith("Non-2xx or 3xx responses:"):
            result["non_2xx"] = int(line.split()[-1])
        elif line.startswith("99%"):
            result["p99"] = line.split()[1]
        elif line.startswith("50%"):
            result["p50"] = line.split()[1]
        elif "requests in" in line:
            result["requests"] = int(line.split()[0])
    return result


def write_bodies(path: Path, factory: MessageFactory, count: int, batch: int | None) -> None:
    with open(path, "w") as handle:
        for _ in range(count):
            if batch is None:
                body = factory.message()
            else:
                body = {"messages": [factory.message() for _ in range(batch)]}
            handle.write(json.dumps(body, ensure_ascii=False) + "\n")


async def paced_latencies(base: str, token: str, factory: MessageFactory, rate: float,
                          seconds: float) -> tuple[list[float], int]:  # fmt: skip
    """Open-loop: send at ``rate`` per second over CONCURRENCY keep-alive connections."""
    parts = urlsplit(base)
    queue: asyncio.Queue = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        while True:
            item = await queue.get()
            if item is None:
                break
            scheduled, body = item
            payload = json.dumps(body).encode()
            writer.write(
                b"POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nAuthorization: Bearer " + token.encode()
                + b"\r\nContent-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
            )  # fmt: skip
            status, length = await read_head(reader)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - scheduled)
            if not 200 <= status < 300:
                errors += 1
        writer.close()

    tasks = [asyncio.create_task(connection()) for _ in range(CONCURRENCY)]
    start = time.perf_counter()
    total = int(rate * seconds)
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((due, factory.message()))
    for _ in tasks:
        queue.put_nowait(None)
    await asyncio.gather(*tasks)
    return latencies, errors


async def read_head(reader: asyncio.StreamReader) -> tuple[int, int]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    return status, length


def count_messages(env: dict[str, str]) -> int:
    code = "from kefu.conversations.models import Message; print(Message.objects.count())"
    return int(run_kefu(env, "shell", "-c", code, capture=True).splitlines()[-1])


def bench_engine(engine: str, args: argparse.Namespace, texts: list[str]) -> dict:
    seconds, phases = args.seconds, args.phases.split(",")
    var_dir = temp_var_dir(f"kefu-bench-ingest-{engine}-")
    database_url = None
    if engine == "postgres":
        recreate_postgres(POSTGRES_URL)
        database_url = POSTGRES_URL
    env = kefu_env(var_dir, database_url)
    run_kefu(env, "migrate", "-v", "0")
    inbox_id, token = run_kefu(env, "shell", "-c", SETUP, capture=True).split()[-2:]
    work = Path(tempfile.mkdtemp(prefix="kefu-bench-bodies-"))
    single_bodies, batch_bodies = work / "single.jsonl", work / "batch.jsonl"
    warm_bodies = work / "warm.jsonl"
    write_bodies(warm_bodies, MessageFactory(int(inbox_id), texts, 4, "w"), 4000, None)
    write_bodies(single_bodies, MessageFactory(int(inbox_id), texts, 1, "s"), 800 * seconds, None)
    write_bodies(batch_bodies, MessageFactory(int(inbox_id), texts, 2, "b"), 12 * seconds, BATCH)
    results: dict = {"engine": engine, "load_before": load_average()}
    server = {"workers": args.workers, "threads": args.threads, "interface": args.interface}
    with kefu_server(env, **server, ports=port_range(args.ports)) as base:
        # Warm-up, not measured: each worker loads its code and the language model on first
        # use, gently first (threads loading the model all at once stall for seconds).
        run_wrk(base + "/api/v1/messages", 4, token, warm_bodies, threads=1, connections=8)
        results["warmup"] = run_wrk(base + "/api/v1/messages", 3, token, warm_bodies)
        # A database in service has planner statistics; a fresh one gets them only when
        # autovacuum comes round (a minute or more), and until then PostgreSQL may pick a plan
        # that scans the whole inbox to find a customer's conversation.
        run_kefu(env, "shell", "-c", ANALYZE)
        if "healthz" in phases:
            results["healthz"] = run_wrk(base + "/healthz", seconds, token, None)
        if "single" in phases:
            results["single"] = run_wrk(base + "/api/v1/messages", seconds, token, single_bodies)
        if "paced" in phases:
            rate = args.paced_rate or results.get("single", {}).get("rps", 200) / 2
            factory = MessageFactory(int(inbox_id), texts, 3, "p")
            cpu, started = time.process_time(), time.perf_counter()
            latencies, errors = asyncio.run(paced_latencies(base, token, factory, rate, seconds))
            results["paced"] = {
                "rate": rate,
                "p50_ms": percentile(latencies, 50) * 1000,
                "p99_ms": percentile(latencies, 99) * 1000,
                "errors": errors,
                "count": len(latencies),
                "client_cpu": (time.process_time() - cpu) / (time.perf_counter() - started),
            }
        if "batch" in phases:
            # Last: batches still in flight when wrk stops would delay any phase after them.
            results["batch"] = run_wrk(
                base + "/api/v1/messages/batch", seconds, token, batch_bodies
            )
    results["load_after"] = load_average()
    results["stored"] = count_messages(env)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(var_dir, ignore_errors=True)
    return results


def report(results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"machine: {machine()}",
        f"server: kefu serve --interface {args.interface} --workers {args.workers} "
        f"--threads {args.threads} (granian); client: wrk, {CONCURRENCY} keep-alive "
        f"connections, {args.seconds} s per figure",
        "",
        "| engine | /healthz req/s | single msg/s | batch msg/s (500/call) "
        "| p50 / p99 ack at half single load | non-2xx | client CPU (cores) | load avg |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        cells = [r["engine"]]
        cells.append(f"{r['healthz']['rps']:.0f}" if "healthz" in r else "-")
        cells.append(f"{r['single']['rps']:.0f}" if "single" in r else "-")
        cells.append(f"{r['batch']['rps'] * BATCH:.0f}" if "batch" in r else "-")
        if "paced" in r:
            paced = r["paced"]
            cells.append(
                f"{paced['p50_ms']:.1f} / {paced['p99_ms']:.1f} ms at {paced['rate']:.0f}/s"
            )
        else:
            cells.append("-")
        phases = [r[k] for k in ("single", "batch") if k in r]
        errors = sum(p["non_2xx"] for p in phases) + r.get("paced", {}).get("errors", 0)
        cells.append(str(errors))
        cpu = [f"{k} {r[k]['client_cpu']:.2f}" for k in ("healthz", "single", "paced", "batch")
               if k in r]  # fmt: skip
        cells.append(", ".join(cpu))
        cells.append(f"{r['load_before']} → {r['load_after']}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--interface", choices=["wsgi", "asgi"], default="wsgi")
    parser.add_argument("--phases", default="healthz,single,paced,batch")
    parser.add_argument("--ports", default="18300-18399", help="where the server may listen")
    parser.add_argument(
        "--paced-rate", type=float, default=0, help="default: half the single rate just measured"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/ingest.py needs wrk: apt-get install wrk")
    texts = load_texts()
    results = [bench_engine(engine, args, texts) for engine in args.engines.split(",")]
    for r in results:
        figures = {k: {kk: vv for kk, vv in v.items() if kk != "raw"}
                   for k, v in r.items() if isinstance(v, dict)}  # fmt: skip
        print(r["engine"], figures, "stored", r["stored"])
    print()
    print(report(results, args))


if __name__ == "__main__":
    main()
