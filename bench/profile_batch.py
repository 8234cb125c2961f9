"""CPU per message of the batch path, in process (issue: foundation; search's ingest budget).

The HTTP benchmark (bench/ingest.py) is the figure of record, but on a 2-core machine that the
load generator, the server and the database share it moves by ±15% between identical runs. This
one is steadier: 500-message batches (bench/ingest.py's messages) posted through Django's test
client by one thread, into a fresh database, and the CPU the whole machine spent per message
(from /proc/stat: this process, the database server and anything else), next to this process's
own CPU. With ``--profile`` it prints the functions that took the most of this process's time.

Usage: python bench/profile_batch.py [--engines sqlite,postgres] [--batches 30]
       [--search on,off] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/kefu_bench_profile"
WARM_BATCHES = 4


def machine_busy_seconds() -> float:
    """CPU seconds every core spent on anything but idling and waiting for I/O."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(value) for value in fields]
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def child(args: argparse.Namespace) -> None:
    # run_child passes no KEFU_ variable on: the setting comes as an argument.
    os.environ["KEFU_SEARCH_INDEXING"] = "true" if args.search == "on" else "false"
    from contextlib import redirect_stdout
    from io import StringIO

    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from ingest import BATCH, SETUP, MessageFactory, load_texts

    call_command("migrate", verbosity=0)
    scope: dict = {}
    with redirect_stdout(StringIO()) as out:
        exec(SETUP, scope)  # noqa: S102 - the benchmark's own set-up code
    inbox_id, token = out.getvalue().split()[-2:]
    factory = MessageFactory(int(inbox_id), load_texts(), 2, "b")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1")

    def post() -> None:
        body = json.dumps({"messages": [factory.message() for _ in range(BATCH)]})
        response = client.post("/api/v1/messages/batch", body, content_type="application/json")
        assert response.status_code in (200, 202), response.content[:500]

    for _ in range(WARM_BATCHES):
        post()
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    busy, cpu, wall = machine_busy_seconds(), time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for _ in range(args.batches):
        post()
    if profiler:
        profiler.disable()
    count = args.batches * BATCH
    result = {
        "machine_us": (machine_busy_seconds() - busy) / count * 1e6,
        "process_us": (time.process_time() - cpu) / count * 1e6,
        "wall_us": (time.perf_counter() - wall) / count * 1e6,
    }
    if profiler:
        import pstats

        if args.dump:
            profiler.dump_stats(args.dump)
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--search", default="on", help="on, off or on,off (alternating)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--dump", default="", help="--profile: also save the stats to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from common import machine, run_child

    print(f"machine: {machine()}")
    for repeat in range(args.repeats):
        for engine in args.engines.split(","):
            for search in args.search.split(","):
                extra = []
                if args.profile:
                    extra = ["--profile", "--top", str(args.top), "--dump", args.dump]
                result = run_child(
                    __file__,
                    engine,
                    POSTGRES_URL,
                    ["--child", "--batches", str(args.batches), "--search", search, *extra],
                    prefix="kefu-bench-profile-",
                )
                print(
                    f"{repeat + 1} {engine:8} search {search:3}: machine {result['machine_us']:.0f}"
                    f" µs/msg, process {result['process_us']:.0f}, wall {result['wall_us']:.0f}"
                )


if __name__ == "__main__":
    main()
