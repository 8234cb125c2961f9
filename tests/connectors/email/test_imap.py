"""IMAP polling against a real dovecot: a thousand mixed mails stored once each (two mailboxes in
parallel), a poller killed at random points that still loses and duplicates nothing, a
UIDVALIDITY change, IDLE, and a server that is down."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count
from imapclient import IMAPClient

from kefu.connectors.email import config, imap
from kefu.connectors.email.models import MailboxCursor
from kefu.conversations.models import Attachment, Conversation, Inbox, InboxKind, Message
from tests.connectors.email import corpus
from tests.connectors.email.dovecot import PASSWORD, Dovecot
from tests.factories import InboxFactory

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[3]
APPEND_BATCH = 100


def imap_inbox(server: Dovecot, user: str, *, folders=("INBOX", "Archive"), **extra) -> Inbox:  # type: ignore[no-untyped-def]
    inbox = InboxFactory(kind=InboxKind.EMAIL, name=f"Mail {user}")
    config.configure(
        inbox,
        address="support@shop.example",
        imap_host="127.0.0.1",
        imap_port=server.port,
        imap_security="none",
        imap_user=user,
        imap_password=PASSWORD,
        imap_folders=list(folders),
        **extra,
    )
    inbox.save()
    return inbox


def client_for(server: Dovecot, user: str) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=30)
    client.login(user, PASSWORD)
    return client


def upload(server: Dovecot, user: str, mails: corpus.Corpus) -> None:
    """APPEND every mail, in order, creating the folders (MULTIAPPEND in batches)."""
    with client_for(server, user) as client:
        for folder, raws in mails.by_folder().items():
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for start in range(0, len(raws), APPEND_BATCH):
                client.multiappend(folder, raws[start : start + APPEND_BATCH])


def stored(inbox: Inbox) -> tuple[int, int, set[str]]:
    """(messages, conversations, external ids) of an inbox, asserting no id is stored twice."""
    messages = Message.objects.filter(inbox=inbox)
    twice = messages.values("external_id").annotate(n=Count("id")).filter(n__gt=1)
    assert not twice.exists(), list(twice)
    keys = set(messages.values_list("external_id", flat=True))
    return messages.count(), Conversation.objects.filter(inbox=inbox).count(), keys


def assert_holds(inbox: Inbox, expected: corpus.Expected) -> None:
    messages, conversations, keys = stored(inbox)
    assert keys == expected.keys
    assert (messages, conversations) == (expected.messages, expected.conversations)
    files = Attachment.objects.filter(message__inbox=inbox, refused_reason="").count()
    assert files == expected.attachments


def test_a_thousand_mixed_mails_in_two_mailboxes_are_stored_once_each(dovecot):
    # Given a shop mailbox of 1,000 mixed mails (two folders sharing copies) whose Amazon relay
    # mail goes to a marketplace inbox, and a second mailbox of 200 without one
    marketplace = InboxFactory(kind=InboxKind.MARKETPLACE, name="Amazon")
    first_user, second_user = dovecot.add_user(), dovecot.add_user()
    first_mails = corpus.build(1000, label="a")
    second_mails = corpus.build(200, seed=7, label="b", relay_target="mailbox")
    upload(dovecot, first_user, first_mails)
    upload(dovecot, second_user, second_mails)
    first = imap_inbox(dovecot, first_user, marketplace_inbox_id=marketplace.pk)
    second = imap_inbox(dovecot, second_user)

    # When both are polled at once
    passes = {done.inbox_id: done for done in imap.poll_all(parallel=2)}

    # Then every mail is stored exactly once, on the right inbox, in the right conversation
    assert {i: p.error for i, p in passes.items()} == {first.pk: "", second.pk: ""}
    assert sum(f.fetched for f in passes[first.pk].folders) == 1000
    assert_holds(first, first_mails.expected["mailbox"])
    assert_holds(marketplace, first_mails.expected["marketplace"])
    assert_holds(second, second_mails.expected["mailbox"])
    skipped = sum(f.skipped for f in passes[first.pk].folders)
    assert skipped == first_mails.skipped
    # ...the relay mail carries its order number
    relayed = Message.objects.filter(inbox=marketplace).first()
    assert relayed is not None
    order = relayed.metadata["marketplace"]["order_numbers"][0]
    assert relayed.metadata["marketplace"]["platform"] == "amazon"
    assert order in relayed.subject
    # ...charsets are read back
    assert Message.objects.filter(inbox=first, text__contains="请帮我查一下物流").exists()
    assert Message.objects.filter(inbox=first, text__contains="何時出貨").exists()
    assert Message.objects.filter(inbox=first, text__contains="mi pedido no ha llegado").exists()

    # And a second pass finds nothing new and stores nothing
    again = imap.poll_all(parallel=2)
    assert sum(f.fetched for done in again for f in done.folders) == 0
    assert_holds(first, first_mails.expected["mailbox"])


def poller_env() -> dict[str, str]:
    """The environment of a ``kefu poll_mail`` process on this test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        env["KEFU_DATABASE_URL"] = f"sqlite:///{Path(database['NAME']).resolve()}"
    else:
        user = quote(database.get("USER") or "")
        password = f":{quote(database['PASSWORD'])}" if database.get("PASSWORD") else ""
        host = database.get("HOST") or "127.0.0.1"
        env["KEFU_DATABASE_URL"] = (
            f"postgres://{user}{password}@{host}:{database.get('PORT') or 5432}/{database['NAME']}"
        )
    env.update(
        KEFU_VAR_DIR=str(Path(settings.VAR_DIR).resolve()),
        DJANGO_SETTINGS_MODULE="kefu.config.settings",
        PYTHONPATH=str(ROOT),
        KEFU_LOG_LEVEL="WARNING",
    )
    return env


def poll_mail_process(env: dict[str, str], inbox: Inbox, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "kefu.config.cli", "poll_mail", "--once", "--inbox", str(inbox.pk)],
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def progress(inbox: Inbox) -> int:
    return Message.objects.filter(inbox=inbox).count()


def test_a_poller_killed_at_random_points_loses_and_duplicates_nothing(dovecot, tmp_path):
    # Given a mailbox of 1,000 mixed mails
    user = dovecot.add_user()
    mails = corpus.build(1000, seed=99, label="k", relay_target="mailbox")
    upload(dovecot, user, mails)
    inbox = imap_inbox(dovecot, user)
    env, log, chance = poller_env(), tmp_path / "poller.log", random.Random()

    # When `kefu poll_mail --once` is killed (SIGKILL) five times while it stores mail
    kills_mid_way = 0
    for _ in range(5):
        before = progress(inbox)
        process = poll_mail_process(env, inbox, log)
        deadline = time.monotonic() + 60
        while progress(inbox) == before and process.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        time.sleep(chance.uniform(0, 0.4))  # a random point past the first stored mail
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            kills_mid_way += 1
        process.wait()
        if progress(inbox) >= mails.expected["mailbox"].messages:
            break
    # ...and then runs to the end
    final = poll_mail_process(env, inbox, log)
    assert final.wait(timeout=240) == 0, log.read_text()

    # Then every mail is stored exactly once
    assert kills_mid_way >= 1, log.read_text()
    assert_holds(inbox, mails.expected["mailbox"])
    assert set(MailboxCursor.objects.filter(inbox=inbox).values_list("folder", flat=True)) == {
        "INBOX",
        "Archive",
    }


def test_a_uidvalidity_change_reads_the_folder_again_without_duplicates(dovecot):
    # Given a folder polled once
    user = dovecot.add_user()
    mails = corpus.build(60, seed=5, label="u", relay_target="mailbox")
    mails.mails = [("Support", raw) for _, raw in mails.mails]
    upload(dovecot, user, mails)
    inbox = imap_inbox(dovecot, user, folders=["Support"])
    imap.poll_all()
    cursor = MailboxCursor.objects.get(inbox=inbox, folder="Support")
    old_validity = cursor.uidvalidity

    # When the folder is deleted and made again (new UIDVALIDITY), with the same mail and more
    more = corpus.build(10, seed=6, label="v", relay_target="mailbox")
    with client_for(dovecot, user) as client:
        client.delete_folder("Support")
        client.create_folder("Support")
        client.multiappend("Support", [raw for _, raw in mails.mails + more.mails])
    (done,) = imap.poll_all()

    # Then the folder is read again from the start, and only the new mail is stored
    cursor.refresh_from_db()
    assert cursor.uidvalidity != old_validity
    assert (cursor.resyncs, done.folders[0].resynced) == (1, True)
    expected = corpus.Expected(
        keys=mails.expected["mailbox"].keys | more.expected["mailbox"].keys,
        customers=mails.expected["mailbox"].customers | more.expected["mailbox"].customers,
        files=mails.expected["mailbox"].files | more.expected["mailbox"].files,
    )
    assert_holds(inbox, expected)
    assert done.folders[0].stored == more.expected["mailbox"].messages


def test_idle_stores_new_mail_without_waiting_for_a_timed_poll(dovecot):
    # Given a poller watching a mailbox, whose timed poll would come only after ten minutes
    user = dovecot.add_user()
    inbox = imap_inbox(dovecot, user, folders=["INBOX"])
    poller = imap.Poller(poll_seconds=600, refresh_seconds=600)
    runner = threading.Thread(target=poller.run, daemon=True)
    runner.start()
    try:
        _wait_for(lambda: MailboxCursor.objects.filter(inbox=inbox).exists())
        # When a mail arrives
        mail = corpus.build(1, seed=3, label="i", relay_target="mailbox")
        upload(dovecot, user, mail)
        # Then IDLE wakes the poller and the mail is stored
        _wait_for(lambda: Message.objects.filter(inbox=inbox).exists())
    finally:
        poller.stop()
        runner.join(20)
    assert not runner.is_alive()
    assert_holds(inbox, mail.expected["mailbox"])


def test_a_server_that_is_down_is_recorded_and_retried_without_stopping_the_others(dovecot):
    # Given one mailbox on a server that is down and one that works
    down = InboxFactory(kind=InboxKind.EMAIL)
    config.configure(
        down, imap_host="127.0.0.1", imap_port=1, imap_security="none", imap_user="x",
        imap_password="y",
    )  # fmt: skip
    down.save()
    user = dovecot.add_user()
    mails = corpus.build(20, seed=4, label="d", relay_target="mailbox")
    upload(dovecot, user, mails)
    working = imap_inbox(dovecot, user, folders=["INBOX"])

    # When both are polled
    passes = {done.inbox_id: done for done in imap.poll_all()}

    # Then the failure is recorded for the admin, and the other mailbox is read all the same
    assert passes[down.pk].error.startswith("ConnectionRefusedError")
    assert MailboxCursor.objects.get(inbox=down, folder="INBOX").last_error.startswith(
        "ConnectionRefusedError"
    )
    assert_holds(working, mails.expected["mailbox"])

    # And a watcher of the down server keeps retrying with a growing delay, never dying
    stop = threading.Event()
    watcher = imap.FolderWatcher(down.pk, "INBOX", stop)
    watcher.backoff = imap.Backoff(first=0.05, ceiling=0.2)
    watcher.start()
    _wait_for(lambda: watcher.backoff.current >= 0.2)
    assert watcher.is_alive()
    stop.set()
    watcher.join(10)
    assert not watcher.is_alive()


def test_backoff_grows_to_its_ceiling_and_resets():
    backoff = imap.Backoff(first=5, ceiling=300)
    assert [backoff.next() for _ in range(8)] == [5, 10, 20, 40, 80, 160, 300, 300]
    backoff.reset()
    assert backoff.next() == 5


def _wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_the_background_tick_polls_every_mailbox_and_schedules_the_next(
    dovecot, forget_scheduled_ticks
):
    from django.core.cache import cache

    from kefu.connectors.email import tasks

    # Given a mailbox with mail, and no tick claimed
    user = dovecot.add_user()
    mails = corpus.build(15, seed=8, label="t", relay_target="mailbox")
    upload(dovecot, user, mails)
    inbox = imap_inbox(dovecot, user, folders=["INBOX"])
    cache.delete(tasks.CLAIM_KEY)

    # When the tick runs (as the worker runs it), and again at once
    summary = tasks.poll_mail_tick.call()
    again = tasks.poll_mail_tick.call()

    # Then it stored the mail once, and the second run found the turn taken and did nothing
    assert summary == {"mailboxes": 1, "failed": 0, "stored": mails.expected["mailbox"].messages}
    assert again == {}
    assert_holds(inbox, mails.expected["mailbox"])
    cache.delete(tasks.CLAIM_KEY)


def test_a_mail_without_sender_is_recorded_on_the_cursor_and_the_rest_is_stored(dovecot):
    # Given a folder where the second of three mails has no sender at all
    user = dovecot.add_user()
    good = corpus.build(2, seed=11, label="s", relay_target="mailbox")
    senderless = b"To: support@shop.example\r\nSubject: ?\r\nMessage-ID: <ns@x>\r\n\r\nhello\r\n"
    with client_for(dovecot, user) as client:
        client.append("INBOX", good.mails[0][1])
        client.append("INBOX", senderless)
        client.append("INBOX", good.mails[1][1])
    inbox = imap_inbox(dovecot, user, folders=["INBOX"])

    # When the folder is polled
    (done,) = imap.poll_all()

    # Then the other mails are stored, and the refusal is recorded with its UID and reason
    assert (done.folders[0].stored, done.folders[0].refused) == (2, 1)
    cursor = MailboxCursor.objects.get(inbox=inbox)
    assert cursor.last_uid == 3
    [refused] = cursor.refused
    assert (refused["uid"], refused["reason"]) == (2, "no sender address in From or Reply-To")
    assert Message.objects.filter(inbox=inbox).count() == 2


def test_a_mail_too_large_to_take_in_arrives_as_its_headers_and_a_note(dovecot, monkeypatch):
    # Given a mail larger than kefu takes in (the limit lowered for the test)
    monkeypatch.setattr(imap, "MAX_MAIL_BYTES", 10_000)
    user = dovecot.add_user()
    big = (
        b"From: Ana <ana@example.com>\r\nTo: support@shop.example\r\nSubject: Photos\r\n"
        b"Message-ID: <big@mail.example>\r\nContent-Type: text/plain\r\n\r\n" + b"x" * 20_000
    )
    with client_for(dovecot, user) as client:
        client.append("INBOX", big)
    inbox = imap_inbox(dovecot, user, folders=["INBOX"])

    # When the folder is polled
    imap.poll_all()

    # Then the agent sees it arrived, from whom, and that it stays on the server
    stored = Message.objects.get(inbox=inbox)
    assert (stored.external_id, stored.subject) == ("<big@mail.example>", "Photos")
    assert stored.text.startswith("This mail is 20")
    assert "kept in the mailbox on the mail server" in stored.text


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_mail_is_read_over_tls_with_the_certificate_verified(dovecot, monkeypatch, security):
    # Given a mailbox reached over implicit TLS or STARTTLS, its certificate from a CA we trust
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.ca_file))
    user = dovecot.add_user()
    mails = corpus.build(5, seed=12, label=security, relay_target="mailbox")
    upload(dovecot, user, mails)
    inbox = imap_inbox(dovecot, user, folders=["INBOX"])
    port = dovecot.tls_port if security == "ssl" else dovecot.port
    config.configure(inbox, imap_security=security, imap_port=port)
    inbox.save()

    # When it is polled, then the mail arrives
    (done,) = imap.poll_all()
    assert done.error == ""
    assert_holds(inbox, mails.expected["mailbox"])


def test_a_certificate_nobody_vouches_for_is_refused(dovecot, monkeypatch):
    # Given a TLS mailbox whose certificate comes from a CA the system does not trust
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    user = dovecot.add_user()
    upload(dovecot, user, corpus.build(3, seed=13, label="x", relay_target="mailbox"))
    inbox = imap_inbox(dovecot, user, folders=["INBOX"])
    config.configure(inbox, imap_security="ssl", imap_port=dovecot.tls_port)
    inbox.save()

    # When it is polled, then no password is sent and nothing is stored; the error is recorded
    (done,) = imap.poll_all()
    assert done.error.startswith("SSLCertVerificationError")
    assert not Message.objects.filter(inbox=inbox).exists()


def test_a_missing_folder_is_recorded_and_the_other_folders_are_read(dovecot):
    user = dovecot.add_user()
    mails = corpus.build(5, seed=14, label="m", relay_target="mailbox")
    upload(dovecot, user, mails)
    inbox = imap_inbox(dovecot, user, folders=["Gone", "INBOX"])

    (done,) = imap.poll_all()

    assert done.error.startswith("Gone: ")
    assert MailboxCursor.objects.get(inbox=inbox, folder="Gone").last_error != ""
    assert MailboxCursor.objects.get(inbox=inbox, folder="INBOX").last_error == ""
    assert_holds(inbox, mails.expected["mailbox"])


def test_the_poller_follows_inboxes_added_changed_and_switched_off(dovecot):
    user = dovecot.add_user()
    poller = imap.Poller(poll_seconds=600, refresh_seconds=600)
    first: dict = {}
    second: dict = {}
    try:
        # Given a poller with nothing to do, when an inbox with two folders appears
        poller.refresh()
        assert poller.watchers == {}
        inbox = imap_inbox(dovecot, user, folders=["INBOX", "Archive"])
        poller.refresh()
        first = {key[:2]: watcher for key, (watcher, _) in poller.watchers.items()}
        # Then each folder gets a watcher
        assert set(first) == {(inbox.pk, "INBOX"), (inbox.pk, "Archive")}

        # When its connection settings change, the watchers start again with them
        config.configure(inbox, imap_host="localhost")
        inbox.save()
        poller.refresh()
        second = {key[:2]: watcher for key, (watcher, _) in poller.watchers.items()}
        assert set(second) == set(first)
        assert all(second[key] is not first[key] for key in first)
        assert all(watcher.stop.is_set() for watcher in first.values())

        # And when the inbox is switched off, its watchers stop
        inbox.is_active = False
        inbox.save()
        poller.refresh()
        assert poller.watchers == {}
        assert all(watcher.stop.is_set() for watcher in second.values())
    finally:
        poller._stop_all()
        for watcher in [*first.values(), *second.values()]:
            watcher.join(20)
    assert not any(w.is_alive() for w in [*first.values(), *second.values()])


def test_kefu_poll_mail_runs_until_sigterm_and_stores_mail_as_it_arrives(dovecot, tmp_path):
    # Given `kefu poll_mail` running (the long-lived process, IDLE) on an empty mailbox
    user = dovecot.add_user()
    inbox = imap_inbox(dovecot, user, folders=["INBOX"])
    log = tmp_path / "poll_mail.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "kefu.config.cli", "poll_mail"],
        env=poller_env(),
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: MailboxCursor.objects.filter(inbox=inbox).exists(), timeout=60)
        # When mail arrives, then it is stored
        mails = corpus.build(3, seed=21, label="p", relay_target="mailbox")
        upload(dovecot, user, mails)
        expected = mails.expected["mailbox"].messages
        _wait_for(lambda: Message.objects.filter(inbox=inbox).count() == expected, timeout=60)
        # And SIGTERM stops it cleanly
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert_holds(inbox, mails.expected["mailbox"])


@pytest.mark.parametrize(("since_days", "expected_old"), [(None, True), (30, False), (0, False)])
def test_a_first_sync_takes_the_configured_window_of_history(dovecot, since_days, expected_old):
    # Given a mailbox with mail that arrived 90 days ago and mail from yesterday
    user = dovecot.add_user()
    old = corpus.build(4, seed=31, label="o", relay_target="mailbox")
    recent = corpus.build(3, seed=32, label="r", relay_target="mailbox")
    now = datetime.now(UTC)
    with client_for(dovecot, user) as client:
        for _, raw in old.mails:
            client.append("INBOX", raw, msg_time=now - timedelta(days=90))
        for _, raw in recent.mails:
            client.append("INBOX", raw, msg_time=now - timedelta(days=1))
    extra = {} if since_days is None else {"imap_since_days": since_days}
    inbox = imap_inbox(dovecot, user, folders=["INBOX"], **extra)

    # When the folder is read for the first time, then only the window is taken
    imap.poll_all()
    taken = set(Message.objects.filter(inbox=inbox).values_list("external_id", flat=True))
    expected = set(recent.expected["mailbox"].keys) if since_days != 0 else set()
    if expected_old:
        expected |= old.expected["mailbox"].keys
    assert taken == expected

    # And mail arriving later is always taken
    later = corpus.build(2, seed=33, label="l", relay_target="mailbox")
    upload(dovecot, user, later)
    imap.poll_all()
    taken = set(Message.objects.filter(inbox=inbox).values_list("external_id", flat=True))
    assert taken == expected | later.expected["mailbox"].keys
