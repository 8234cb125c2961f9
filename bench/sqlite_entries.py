"""What writing a message's search entry costs SQLite, layer by layer (issue: search).

Replays the engine's writes in plain sqlite3, with kefu's PRAGMAs: the benchmark corpus'
documents (bench/ingest.py's texts, analyzed by kefu.search.text) in 500-row transactions into
the entries table and its FTS5 table, after ``--preload`` rows, and reports the process CPU a
row for each variant (with and without the ``conversation_id`` index, FTS5 automerge 4 or 8).
With ``--queries`` it loads ``--rows`` documents per automerge setting and times the engine's
candidate query (newest 400 matches within 3 inboxes) for words and phrases in five languages.

Usage: python bench/sqlite_entries.py [--rows 60000] [--preload 200000] [--repeats 2]
       python bench/sqlite_entries.py --queries [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest import load_texts

from kefu.search.engines import SqliteEngine
from kefu.search.query import parse
from kefu.search.text import index_terms

PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "temp_store=MEMORY",
           "cache_size=-65536", "mmap_size=268435456")  # fmt: skip
QUERIES = ["order", "refund", "package delivered", "iphone", "amazon", "wrong size", "订单",
           "退款", "الطلب", "bestellung", "pedido", "help", "battery dies", "xyzzy"]  # fmt: skip
BATCH = 500


def open_database(path: str, *, index: bool, automerge: int) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in PRAGMAS:
        db.execute(f"PRAGMA {pragma}")
    db.execute(
        "CREATE TABLE e (message_id integer PRIMARY KEY, conversation_id bigint NOT NULL, "
        "inbox_id bigint NOT NULL, sent_at datetime NOT NULL, document text NOT NULL)"
    )
    if index:
        db.execute("CREATE INDEX e_conversation ON e (conversation_id)")
    db.execute(
        "CREATE VIRTUAL TABLE f USING fts5(document, content='e', content_rowid='message_id', "
        "tokenize='ascii')"
    )
    db.execute(f"INSERT INTO f(f, rank) VALUES ('automerge', {automerge})")
    return db


def write(db: sqlite3.Connection, rows: list[tuple], *, fts: bool) -> None:
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO e VALUES (?, ?, ?, ?, ?)", chunk)
        if fts:
            db.executemany("INSERT INTO f(rowid, document) VALUES (?, ?)",
                           [(row[0], row[4]) for row in chunk])  # fmt: skip
        db.execute("COMMIT")


def corpus(count: int, seed: int = 1) -> list[tuple]:
    documents = [" ".join(index_terms(text)) for text in load_texts()]
    rng = random.Random(seed)
    # Conversations in random order, as a busy shop's replies arrive.
    return [(i, rng.randint(1, 10**6), 1 + i % 10, "2026-11-24 01:02:03.123456",
             documents[rng.randrange(len(documents))]) for i in range(1, count + 1)]  # fmt: skip


def write_costs(args: argparse.Namespace) -> None:
    rows = corpus(args.preload + args.rows)
    variants = [
        ("entries, with the index, no FTS5", True, 4, False),
        ("entries, no index, no FTS5", False, 4, False),
        ("FTS5 automerge 4, with the index", True, 4, True),
        ("FTS5 automerge 4, no index", False, 4, True),
        ("FTS5 automerge 8, with the index", True, 8, True),
        ("FTS5 automerge 8, no index", False, 8, True),
    ]
    for _ in range(args.repeats):
        for name, index, automerge, fts in variants:
            with tempfile.TemporaryDirectory() as tmp:
                db = open_database(os.path.join(tmp, "e.db"), index=index, automerge=automerge)
                write(db, rows[: args.preload], fts=fts)
                started = time.process_time()
                write(db, rows[args.preload :], fts=fts)
                per_row = (time.process_time() - started) / args.rows * 1e6
                db.close()
            print(f"{name:36s} {per_row:6.1f} µs a row", flush=True)


def query_costs(args: argparse.Namespace) -> None:
    rows = corpus(args.rows)
    engine = SqliteEngine()
    matches = [engine.match(parse(text)) for text in QUERIES]
    for automerge in (4, 8):
        with tempfile.TemporaryDirectory() as tmp:
            db = open_database(os.path.join(tmp, "e.db"), index=False, automerge=automerge)
            started = time.process_time()
            write(db, rows, fts=True)
            per_row = (time.process_time() - started) / len(rows) * 1e6
            times: list[float] = []
            for round_ in range(7):
                for match in matches:
                    began = time.perf_counter()
                    db.execute(
                        "SELECT e.message_id FROM f JOIN e ON e.message_id = f.rowid WHERE f "
                        "MATCH ? AND e.inbox_id IN (1, 2, 3) ORDER BY f.rowid DESC LIMIT 400",
                        (match,),
                    ).fetchall()
                    if round_ >= 2:  # two warm-up rounds
                        times.append((time.perf_counter() - began) * 1000)
            db.close()
        times.sort()
        p95 = times[int(len(times) * 0.95)]
        print(
            f"automerge {automerge}: {per_row:.1f} µs a row to write {len(rows):,} rows; query "
            f"p50 {statistics.median(times):.2f} ms, p95 {p95:.2f} ms, max {times[-1]:.2f} ms",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--preload", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--queries", action="store_true")
    args = parser.parse_args()
    if args.queries:
        query_costs(args)
    else:
        write_costs(args)


if __name__ == "__main__":
    main()
