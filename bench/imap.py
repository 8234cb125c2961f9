"""IMAP ingestion rate (issue: channels, email): mails per second from a real dovecot into kefu.

For each engine (SQLite; PostgreSQL with --engines sqlite,postgres), in a fresh database: a
mailbox of generated real-world-shaped mail (tests/connectors/email/corpus.py: several charsets,
attachments, relay mail, bounces, auto-replies, copies in two folders) is APPENDed to a throwaway
dovecot, then read with ``imap.poll_all`` (one mailbox, then ``--mailboxes`` at once), the whole
pipeline included (parsing, identity resolution, threading, language detection, attachments,
one transaction per mail with its cursor).

Usage: python bench/imap.py [--mails 2000] [--mailboxes 2] [--engines sqlite,postgres]
(needs /usr/sbin/dovecot: apt-get install dovecot-imapd)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_average, machine, run_child

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/kefu_bench_imap"


# --- Child: inside a fresh kefu ----------------------------------------------------------------


def child(mails: int, mailboxes: int) -> dict:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from tests.connectors.email import corpus
    from tests.connectors.email.dovecot import Dovecot

    server = Dovecot.start()
    try:
        single = _timed(server, [corpus.build(mails, seed=1, label="one")])
        many = _timed(
            server,
            [corpus.build(mails, seed=10 + n, label=f"m{n}") for n in range(mailboxes)],
        )
    finally:
        server.stop()
    return {"single": single, "parallel": many, "mailboxes": mailboxes, "load": load_average()}


def _timed(server, mailboxes) -> dict:  # type: ignore[no-untyped-def]
    from imapclient import IMAPClient

    from kefu.connectors.email import config, imap
    from kefu.conversations.models import Inbox, InboxKind
    from tests.connectors.email.dovecot import PASSWORD

    ids = []
    for mails in mailboxes:
        user = server.add_user()
        with IMAPClient("127.0.0.1", port=server.port, ssl=False) as client:
            client.login(user, PASSWORD)
            for folder, raws in mails.by_folder().items():
                if not client.folder_exists(folder):
                    client.create_folder(folder)
                for start in range(0, len(raws), 100):
                    client.multiappend(folder, raws[start : start + 100])
        inbox = Inbox(name=f"bench {user}", kind=InboxKind.EMAIL)
        config.configure(
            inbox, address="support@shop.example", imap_host="127.0.0.1",
            imap_port=server.port, imap_security="none", imap_user=user,
            imap_password=PASSWORD, imap_folders=["INBOX", "Archive"],
        )  # fmt: skip
        inbox.save()
        ids.append(inbox.pk)
    started = time.perf_counter()
    passes = imap.poll_all(inbox_ids=ids, parallel=len(ids))
    elapsed = time.perf_counter() - started
    fetched = sum(f.fetched for p in passes for f in p.folders)
    stored = sum(f.stored for p in passes for f in p.folders)
    assert not any(p.error for p in passes), [p.error for p in passes]
    return {
        "mails": fetched,
        "stored": stored,
        "seconds": round(elapsed, 2),
        "mails_per_s": round(fetched / elapsed, 1),
    }


# --- Parent ----------------------------------------------------------------------------------


def report(results: list[dict]) -> str:
    lines = [
        f"Machine: {machine()}",
        "",
        "| engine | one mailbox: mails, s, mails/s | N mailboxes at once: mails, s, mails/s "
        "| load |",
        "| --- | --- | --- | --- |",
    ]
    for r in results:
        s, p = r["single"], r["parallel"]
        lines.append(
            f"| {r['engine']} | {s['mails']}, {s['seconds']}, {s['mails_per_s']} "
            f"| {r['mailboxes']}: {p['mails']}, {p['seconds']}, {p['mails_per_s']} "
            f"| {r['load']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--mailboxes", type=int, default=2)
    parser.add_argument("--engines", default="sqlite")
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.mails, args.mailboxes)))
        return
    results = []
    for engine in args.engines.split(","):
        extra = ["--child", "--mails", str(args.mails), "--mailboxes", str(args.mailboxes)]
        found = run_child(__file__, engine, POSTGRES_URL, extra, prefix="kefu-bench-imap-")
        results.append({"engine": engine, **found})
    print(json.dumps(results, indent=2))
    print(report(results))


if __name__ == "__main__":
    main()
