"""Chat widget at scale (issue: channels): many open widget websockets on one node, and the time
from an agent's reply (the API call) to the visitor's socket.

For each engine on a fresh database:
- sqlite: `kefu run` (one process: uvicorn, in-memory channel layer, in-process worker), the
  embedded default;
- postgres: `kefu serve --interface asgi --workers 2` on PostgreSQL + Redis (channel layer,
  cache, tasks): a reply posted to one worker reaches a socket held by the other through Redis.

Steps: open N sockets (default 2,000), each says hello and writes one message (N conversations);
the server's resident memory is read before and after (all processes of the server, from /proc),
giving memory per connection. Then R replies (default 1,000) are posted through the REST API at
a steady rate to random visitors; latency = from just before the POST is sent to the moment the
visitor's socket receives the reply. Sockets that drop are counted.

Usage: python bench/widget.py [--engines sqlite,postgres] [--sockets 2000] [--replies 1000]
       [--rate 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BIN,
    free_port,
    kefu_env,
    load_average,
    machine,
    percentile,
    recreate_postgres,
    run_kefu,
    temp_var_dir,
    wait_for,
)

POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/kefu_bench_widget"
REDIS_URL = "redis://127.0.0.1:6379/11"
ORIGIN = "https://shop.example"

SETUP = """
from kefu.accounts.actions import create_agent, create_token
from kefu.connectors.chat import config
from kefu.conversations.models import Inbox, InboxKind
inbox = Inbox.objects.create(name="Bench chat", kind=InboxKind.CHAT)
config.configure(inbox, new_conversations_per_hour=100000)
inbox.save()
admin = create_agent(username="bench", password=None, role="admin")
print(config.settings_of(inbox).widget_key, create_token(user=admin, name="bench")[1])
"""

CONVERSATIONS = """
import json
from kefu.conversations.models import Conversation
print(json.dumps(dict(Conversation.objects.filter(thread_key__startswith="visitor:")
    .values_list("thread_key", "pk"))))
"""


def raise_open_files() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def group_rss_bytes(pgid: int) -> int:
    """Resident memory of every process in the process group ``pgid`` (the server and its
    workers), from /proc."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return total


@contextmanager
def server(engine: str, env: dict[str, str]):  # type: ignore[no-untyped-def]
    port = free_port()
    if engine == "sqlite":
        command = [str(BIN / "kefu"), "run", "--port", str(port)]
    elif engine == "sqlite-granian":
        command = [str(BIN / "kefu"), "serve", "--interface", "asgi", "--workers", "1",
                   "--port", str(port)]  # fmt: skip
    else:
        command = [str(BIN / "kefu"), "serve", "--interface", "asgi", "--workers", "2",
                   "--port", str(port)]  # fmt: skip
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            command, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(base + "/healthz", timeout=60)
            yield base, process.pid
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
            log.seek(0)
            problems = [line for line in log if "ERROR" in line or "Traceback" in line]
            if problems:
                print(f"server log: {len(problems)} errors; last:", *problems[-5:])


class Visitor:
    def __init__(self, socket, token: str) -> None:  # type: ignore[no-untyped-def]
        self.socket = socket
        self.token = token
        self.waiting: dict[str, asyncio.Future] = {}
        self.dropped = False

    @property
    def thread_key(self) -> str:
        return "visitor:" + self.token.split(":")[0]

    async def listen(self) -> None:
        try:
            async for raw in self.socket:
                frame = json.loads(raw)
                if frame.get("type") != "messages":
                    continue
                now = time.perf_counter()
                for message in frame["messages"]:
                    future = self.waiting.pop(message["text"], None)
                    if future is not None and not future.done():
                        future.set_result(now)
        except Exception:
            self.dropped = True
        else:
            self.dropped = True


async def open_visitor(ws_url: str, n: int) -> Visitor:
    import websockets

    socket = await websockets.connect(
        ws_url, origin=ORIGIN, max_size=2**20, open_timeout=60, ping_interval=None
    )
    await socket.send(json.dumps({"type": "hello", "token": None, "language": "en"}))
    welcome = json.loads(await socket.recv())
    visitor = Visitor(socket, welcome["token"])
    text = f"Hello from visitor {n}: where is my order {100000 + n}?"
    await socket.send(json.dumps({"type": "message", "text": text, "client_id": f"bench-{n:06d}"}))
    while True:
        frame = json.loads(await socket.recv())
        if frame["type"] == "ack":
            break
        if frame["type"] == "error":
            raise RuntimeError(frame)
    return visitor


async def open_all(ws_url: str, count: int, concurrency: int = 50) -> list[Visitor]:
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> Visitor:
        async with gate:
            return await open_visitor(ws_url, n)

    return await asyncio.gather(*(one(n) for n in range(count)))


async def reply_latencies(
    base: str, token: str, visitors: list[Visitor], conversations: dict[str, int], args
) -> tuple[list[float], list[float], int]:
    import httpx

    rng = random.Random(7)
    latencies: list[float] = []
    answered: list[float] = []  # the API call alone: tells a slow request from a slow push
    errors = 0
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:

        async def one(n: int) -> None:
            nonlocal errors
            visitor = rng.choice(visitors)
            text = f"Reply {n}: your parcel is on its way."
            arrived = asyncio.get_running_loop().create_future()
            visitor.waiting[text] = arrived
            started = time.perf_counter()
            response = await client.post(
                f"/api/v1/conversations/{conversations[visitor.thread_key]}/messages",
                json={"text": text},
            )
            answered.append(time.perf_counter() - started)
            if response.status_code != 201:
                errors += 1
                return
            try:
                latencies.append(await asyncio.wait_for(arrived, 10) - started)
            except TimeoutError:
                errors += 1

        tasks = []
        for n in range(args.replies):
            tasks.append(asyncio.create_task(one(n)))
            await asyncio.sleep(1 / args.rate)
        await asyncio.gather(*tasks)
    return latencies, answered, errors


async def measure(base: str, pid: int, token: str, widget_key: str, env, args) -> dict:  # type: ignore[no-untyped-def]
    ws_url = base.replace("http://", "ws://") + f"/ws/chat/{widget_key}/"
    # Warm-up: the first messages load the language model; not counted in memory.
    warm = await open_all(ws_url, 20)
    for visitor in warm:
        await visitor.socket.close()
    await asyncio.sleep(1)
    rss_before = group_rss_bytes(pid)
    started = time.perf_counter()
    visitors = await open_all(ws_url, args.sockets)
    open_seconds = time.perf_counter() - started
    listeners = [asyncio.create_task(v.listen()) for v in visitors]
    await asyncio.sleep(2)
    rss_after = group_rss_bytes(pid)
    listed = run_kefu(env, "shell", "-c", CONVERSATIONS, capture=True).splitlines()[-1]
    conversations = json.loads(listed)
    latencies, answered, errors = await reply_latencies(base, token, visitors, conversations, args)
    dropped = sum(v.dropped for v in visitors)
    for visitor in visitors:
        await visitor.socket.close()
    await asyncio.gather(*listeners, return_exceptions=True)
    return {
        "sockets": args.sockets,
        "open_seconds": open_seconds,
        "rss_before_mb": rss_before / 2**20,
        "rss_after_mb": rss_after / 2**20,
        "kb_per_socket": (rss_after - rss_before) / args.sockets / 1024,
        "replies": len(latencies),
        "errors": errors,
        "dropped": dropped,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000 if latencies else 0,
        "api_p50_ms": percentile(answered, 50) * 1000,
        "api_p99_ms": percentile(answered, 99) * 1000,
    }


def bench_engine(engine: str, args: argparse.Namespace) -> dict:
    var_dir = temp_var_dir(f"kefu-bench-widget-{engine}-")
    database_url = None
    if engine == "postgres":
        recreate_postgres(POSTGRES_URL)
        database_url = POSTGRES_URL
    env = kefu_env(var_dir, database_url)
    if engine == "postgres":
        env["KEFU_REDIS_URL"] = REDIS_URL
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
    run_kefu(env, "migrate", "-v", "0")
    widget_key, token = run_kefu(env, "shell", "-c", SETUP, capture=True).split()[-2:]
    result: dict = {"engine": engine, "load_before": load_average()}
    with server(engine, env) as (base, pid):
        result.update(asyncio.run(measure(base, pid, token, widget_key, env, args)))
    result["load_after"] = load_average()
    shutil.rmtree(var_dir, ignore_errors=True)
    return result


def report(results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"### Widget sockets ({time.strftime('%Y-%m-%d')})",
        "",
        f"Machine: {machine()}. {args.sockets} widget websockets open at once on one node, "
        f"{args.replies} agent replies posted through the REST API at {args.rate}/s to random "
        "visitors; latency from just before the POST to the frame on the visitor's socket.",
        "",
        "| engine | sockets | opened in | memory per socket | replies | p50 | p95 | p99 | max "
        "| API call p50/p99 | dropped | errors | load before/after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['engine']} | {r['sockets']} | {r['open_seconds']:.1f} s "
            f"| {r['kb_per_socket']:.0f} KB ({r['rss_before_mb']:.0f} -> {r['rss_after_mb']:.0f}"
            f" MB) | {r['replies']} | {r['p50_ms']:.1f} ms | {r['p95_ms']:.1f} ms "
            f"| {r['p99_ms']:.1f} ms | {r['max_ms']:.1f} ms "
            f"| {r['api_p50_ms']:.0f} / {r['api_p99_ms']:.0f} ms | {r['dropped']} | {r['errors']} "
            f"| {r['load_before']} / {r['load_after']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--replies", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args()
    raise_open_files()
    results = []
    for engine in args.engines.split(","):
        print(f"--- {engine}", flush=True)
        result = bench_engine(engine, args)
        print(json.dumps(result), flush=True)
        results.append(result)
    print()
    print(report(results, args))


if __name__ == "__main__":
    main()
