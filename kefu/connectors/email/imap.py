"""IMAP polling: every email inbox with IMAP settings, several mailboxes in parallel, IDLE where
the server offers it (``kefu poll_mail``; ``kefu poll_mail --once`` for one pass from cron).

Exactly once:
- each (inbox, folder) has a cursor row (``MailboxCursor``): the folder's UIDVALIDITY and the
  highest UID stored. A mail is fetched with BODY.PEEK (the server's \\Seen flag is left alone),
  stored, and the cursor advanced in the same transaction (a few mails per transaction), so a
  poller killed at any point fetches again from the last stored UID: nothing is skipped;
- the pipeline stores a mail once by its key (Message-ID, else a SHA-256 of the raw mail), so
  what is fetched twice (after a kill, the same mail in two folders, a UIDVALIDITY change that
  makes the folder start over from UID 1) is stored once.

Failures: a server that is down, refuses the login or drops the connection is logged, recorded
on the cursor (``last_error``) and retried with a growing delay (up to five minutes); it never
stops the poller or the other mailboxes. A mail that cannot be stored (no sender, refused by the
pipeline) is recorded on the cursor with its UID and the reason and stays on the server.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from django.db import close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone
from imapclient import IMAPClient

from kefu.connectors.email import inbound
from kefu.connectors.email.config import EmailSettings, settings_of
from kefu.connectors.email.ingest import parse_mail, store_parsed
from kefu.connectors.email.models import MailboxCursor
from kefu.conversations.models import Inbox, InboxKind
from kefu.core.errors import InvalidInput

logger = logging.getLogger(__name__)
T = TypeVar("T")

TIMEOUT = 60.0
FETCH_BATCH = 50
# Mails stored per transaction: fewer commits, yet SQLite's write lock is never held long.
TRANSACTION_MAILS = 10
MAX_MAIL_BYTES = 50 * 1024 * 1024
IDLE_SECONDS = 300.0  # servers end IDLE after 30 minutes; start a fresh one well before
IDLE_CHECK_SECONDS = 1.0  # how often an idling thread looks whether it should stop
POLL_SECONDS = 60.0  # between passes, when the server has no IDLE
FIRST_RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 300.0
REFUSED_KEPT = 50


@dataclass
class FolderPass:
    """What one pass over a folder did."""

    inbox_id: int
    folder: str
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    skipped: int = 0
    refused: int = 0
    resynced: bool = False


@dataclass
class MailboxPass:
    inbox_id: int
    folders: list[FolderPass] = field(default_factory=list)
    error: str = ""


# --- Connecting ----------------------------------------------------------------------------


def connect(settings: EmailSettings, *, timeout: float = TIMEOUT) -> IMAPClient:
    """A logged-in client. Raises OSError or imaplib's errors when the server is unreachable
    or refuses the login."""
    context = ssl.create_default_context()
    client = IMAPClient(
        settings.imap_host,
        port=settings.imap_port,
        ssl=settings.imap_security == "ssl",
        ssl_context=context if settings.imap_security == "ssl" else None,
        timeout=timeout,
    )
    try:
        if settings.imap_security == "starttls":
            client.starttls(context)
        client.login(settings.imap_user, settings.imap_password)
    except BaseException:
        _quietly_close(client)
        raise
    return client


def _quietly_close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # already broken: the socket is closed either way
        try:
            client.shutdown()
        except Exception:
            logger.debug("IMAP connection already closed", exc_info=True)


# --- One pass over a folder ----------------------------------------------------------------


def poll_folder(client: IMAPClient, inbox: Inbox, folder: str) -> FolderPass:
    """Store every mail of ``folder`` past the cursor, oldest first. Raises on server errors
    (the cursor keeps what was stored before)."""
    done = FolderPass(inbox_id=inbox.pk, folder=folder)
    selected = client.select_folder(folder, readonly=True)
    cursor, done.resynced = _cursor(client, inbox, folder, selected)
    # "n:*" always matches the newest mail even when its UID is below n: filter it out.
    uids = sorted(
        u for u in client.search(["UID", f"{cursor.last_uid + 1}:*"]) if u > cursor.last_uid
    )
    for chunk in _chunks(uids, FETCH_BATCH):
        fetched = list(_fetch(client, chunk))
        for group in _chunks(fetched, TRANSACTION_MAILS):
            _store_group(inbox, cursor, group, done)
    MailboxCursor.objects.filter(pk=cursor.pk).update(last_polled_at=timezone.now(), last_error="")
    return done


def _cursor(
    client: IMAPClient, inbox: Inbox, folder: str, selected: dict
) -> tuple[MailboxCursor, bool]:
    """The folder's cursor; a changed UIDVALIDITY starts it over (True). A new cursor, or one
    starting over, begins at the inbox's ``imap_since_days`` window (all mail without one)."""
    uidvalidity = int(selected[b"UIDVALIDITY"])
    cursor = MailboxCursor.objects.filter(inbox=inbox, folder=folder).first()
    if cursor is None:
        start = _first_uid(client, selected, settings_of(inbox).imap_since_days)
        cursor, _ = MailboxCursor.objects.get_or_create(
            inbox=inbox, folder=folder, defaults={"uidvalidity": uidvalidity, "last_uid": start}
        )
    if cursor.uidvalidity == uidvalidity:
        return cursor, False
    logger.warning(
        "inbox %s folder %r: UIDVALIDITY %s -> %s, reading the folder again from the start",
        inbox.pk, folder, cursor.uidvalidity, uidvalidity,
    )  # fmt: skip
    start = _first_uid(client, selected, settings_of(inbox).imap_since_days)
    MailboxCursor.objects.filter(pk=cursor.pk).update(
        uidvalidity=uidvalidity, last_uid=start, resyncs=F("resyncs") + 1
    )
    cursor.refresh_from_db()
    return cursor, True


def _first_uid(client: IMAPClient, selected: dict, since_days: int | None) -> int:
    """The UID after which to read: 0 for all mail; with a window of days, the one before the
    first mail that arrived within it (IMAP SINCE: the server's arrival date)."""
    if since_days is None:
        return 0
    following = int(selected.get(b"UIDNEXT") or 0)
    if not following:  # a server that does not say: the newest UID + 1
        following = max(client.search(["ALL"]) or [0]) + 1
    if since_days == 0:
        return following - 1
    since = (timezone.now() - timedelta(days=since_days)).date()
    recent = client.search(["SINCE", since])
    return (min(recent) - 1) if recent else following - 1


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _fetch(client: IMAPClient, uids: Sequence[int]) -> Iterator[tuple[int, bytes]]:
    """(uid, raw mail) in UID order. A mail larger than MAX_MAIL_BYTES comes as its header and
    a note (see ``_oversized``) instead of being loaded into memory."""
    sizes = client.fetch(list(uids), ["RFC822.SIZE"])
    huge = [u for u in uids if int(sizes.get(u, {}).get(b"RFC822.SIZE", 0)) > MAX_MAIL_BYTES]
    normal = [u for u in uids if u not in huge]
    bodies = client.fetch(normal, ["BODY.PEEK[]"]) if normal else {}
    headers = client.fetch(huge, ["BODY.PEEK[HEADER]"]) if huge else {}
    for uid in uids:
        if uid in bodies:
            yield uid, bytes(bodies[uid][b"BODY[]"])
        elif uid in headers:
            size = int(sizes[uid][b"RFC822.SIZE"])
            yield uid, _oversized(bytes(headers[uid][b"BODY[HEADER]"]), size)
        else:
            logger.info("UID %s disappeared before it could be fetched (expunged)", uid)


def _oversized(header: bytes, size: int) -> bytes:
    """A stand-in for a mail too large to take in: its own headers (sender, subject, threading)
    and a note saying so, so that the agent sees it arrived and reads it in the mailbox."""
    kept, dropping, has_id = [], False, False
    for line in header.rstrip(b"\r\n").split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):  # a folded continuation of the header above
            if not dropping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        dropping = name.startswith(b"content-") or name == b"mime-version"
        has_id = has_id or name == b"message-id"
        if not dropping:
            kept.append(line)
    if not has_id:
        # The key of the stand-in must not change between fetches: derive one from the header.
        kept.append(
            f"Message-ID: <oversized.{hashlib.sha256(header).hexdigest()}@kefu.invalid>".encode()
        )
    note = (
        f"This mail is {size} bytes, larger than kefu takes in ({MAX_MAIL_BYTES} bytes). "
        "It is kept in the mailbox on the mail server."
    )
    return b"\r\n".join([*kept, b"Content-Type: text/plain; charset=utf-8", b"", note.encode()])


def _store_group(
    inbox: Inbox, cursor: MailboxCursor, group: Sequence[tuple[int, bytes]], done: FolderPass
) -> None:
    """Store a few mails and advance the cursor past them in one transaction (see the module's
    contract): one commit for several mails, and the parsing done before the transaction, so
    SQLite's write lock is held for the database work only.

    A mail that cannot be stored is recorded as refused in the same transaction; its own
    savepoint keeps its neighbours. Counted only once committed.
    """
    parsed = [(uid, raw, _parsed(inbox, raw)) for uid, raw in group]
    outcomes: list[str] = []
    with transaction.atomic():
        for uid, raw, mail in parsed:
            if isinstance(mail, str):
                _refuse(cursor, uid, raw, mail)
                outcomes.append("refused")
                continue
            try:
                with transaction.atomic():
                    outcome = store_parsed(inbox, mail)
            except InvalidInput as exc:
                _refuse(cursor, uid, raw, str(exc))
                outcomes.append("refused")
                continue
            outcomes.append(
                "skipped" if outcome.skipped else "stored" if outcome.created else "duplicates"
            )
        _advance(cursor, group[-1][0])
    done.fetched += len(outcomes)
    for name in outcomes:
        setattr(done, name, getattr(done, name) + 1)


def _parsed(inbox: Inbox, raw: bytes) -> inbound.ParsedMail | str:
    """The parsed mail, or why it cannot be read."""
    try:
        return parse_mail(inbox, raw)
    except inbound.InvalidMail as exc:
        return str(exc)
    except Exception as exc:
        # Parsing touches no database: whatever fails here fails again on every retry, and
        # would hold up the folder behind this one mail. It stays on the server, recorded.
        logger.exception("a mail kefu cannot parse")
        return f"cannot parse: {describe(exc)}"


def _advance(cursor: MailboxCursor, uid: int) -> None:
    # Only forward, and only within the same UIDVALIDITY (a resync elsewhere wins).
    MailboxCursor.objects.filter(
        pk=cursor.pk, uidvalidity=cursor.uidvalidity, last_uid__lt=uid
    ).update(last_uid=uid)
    cursor.last_uid = max(cursor.last_uid, uid)


def _refuse(cursor: MailboxCursor, uid: int, raw: bytes, reason: str) -> None:
    """Record a mail that cannot be stored (inside the caller's transaction)."""
    logger.warning(
        "inbox %s folder %r UID %s not stored: %s", cursor.inbox_id, cursor.folder, uid, reason
    )
    locked = MailboxCursor.objects.select_for_update().get(pk=cursor.pk)
    entry = {
        "uid": uid,
        "uidvalidity": cursor.uidvalidity,
        "reason": reason[:300],
        "sha256": hashlib.sha256(raw).hexdigest(),
        "at": timezone.now().isoformat(),
    }
    locked.refused = [*locked.refused, entry][-REFUSED_KEPT:]
    locked.save(update_fields=["refused", "updated_at"])


# --- Mailboxes -------------------------------------------------------------------------------


def polled_inboxes() -> list[Inbox]:
    """Active email and marketplace inboxes with IMAP settings."""
    inboxes = Inbox.objects.filter(
        kind__in=[InboxKind.EMAIL, InboxKind.MARKETPLACE], is_active=True
    ).order_by("pk")
    return [inbox for inbox in inboxes if settings_of(inbox).polls_imap]


def poll_mailbox(inbox: Inbox) -> MailboxPass:
    """One pass over every folder of one inbox; errors are recorded, not raised."""
    done = MailboxPass(inbox_id=inbox.pk)
    settings = settings_of(inbox)
    try:
        client = connect(settings)
    except Exception as exc:
        done.error = describe(exc)
        logger.warning("inbox %s (%s): %s", inbox.pk, settings.imap_host, done.error)
        _record_error(inbox, settings.imap_folders, done.error)
        return done
    try:
        for folder in settings.imap_folders:
            try:
                done.folders.append(poll_folder(client, inbox, folder))
            except Exception as exc:  # a missing folder must not keep the others unread
                error = describe(exc)
                logger.warning("inbox %s folder %r: %s", inbox.pk, folder, error)
                _record_error(inbox, [folder], error)
                done.error = "; ".join(filter(None, [done.error, f"{folder}: {error}"]))
    finally:
        _quietly_close(client)
    return done


def poll_all(*, inbox_ids: Sequence[int] | None = None, parallel: int = 4) -> list[MailboxPass]:
    """One pass over every polled inbox (or those of ``inbox_ids``), ``parallel`` at a time."""
    inboxes = [i for i in polled_inboxes() if inbox_ids is None or i.pk in inbox_ids]
    if not inboxes:
        return []
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="kefu-imap") as pool:
        return list(pool.map(_in_thread(poll_mailbox), inboxes))


def _in_thread(function):  # type: ignore[no-untyped-def]
    """Run ``function`` with this thread's own database connection, closed afterwards."""

    def run(*args):  # type: ignore[no-untyped-def]
        try:
            return function(*args)
        finally:
            connection.close()

    return run


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _record_error(inbox: Inbox, folders: Sequence[str], error: str) -> None:
    try:
        for folder in folders:
            MailboxCursor.objects.update_or_create(
                inbox=inbox, folder=folder, defaults={"last_error": error}
            )
    except Exception:  # the database may be what failed; the log has the error
        logger.exception("could not record the IMAP error of inbox %s", inbox.pk)


# --- Watching: IDLE or a timed poll, one thread per folder --------------------------------


class Backoff:
    """5 s, 10 s, 20 s, ... up to MAX_RETRY_SECONDS; reset after a good pass."""

    def __init__(self, first: float = FIRST_RETRY_SECONDS, ceiling: float = MAX_RETRY_SECONDS):
        self.first, self.ceiling, self.current = first, ceiling, 0.0

    def next(self) -> float:
        self.current = min(self.ceiling, self.current * 2 if self.current else self.first)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


class FolderWatcher(threading.Thread):
    """Keeps one folder of one inbox ingested until ``stop`` is set: a pass, then IDLE until the
    server announces mail (or a timed wait without IDLE), and so on; any failure is logged and
    retried after a growing delay."""

    def __init__(self, inbox_id: int, folder: str, stop: threading.Event, *,
                 poll_seconds: float = POLL_SECONDS) -> None:  # fmt: skip
        super().__init__(name=f"kefu-imap-{inbox_id}-{folder}", daemon=True)
        self.inbox_id, self.folder, self.stop = inbox_id, folder, stop
        self.poll_seconds = poll_seconds
        self.backoff = Backoff()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._session()
            except Exception as exc:
                delay = self.backoff.next()
                logger.warning(
                    "inbox %s folder %r: %s; retrying in %.0f s",
                    self.inbox_id, self.folder, describe(exc), delay,
                )  # fmt: skip
                self._record(describe(exc))
                self.stop.wait(delay)
            finally:
                close_old_connections()
        connection.close()

    def _session(self) -> None:
        inbox = Inbox.objects.get(pk=self.inbox_id)
        client = connect(settings_of(inbox))
        try:
            while not self.stop.is_set():
                poll_folder(client, inbox, self.folder)
                self.backoff.reset()
                close_old_connections()
                self._wait_for_mail(client)
        finally:
            _quietly_close(client)

    def _wait_for_mail(self, client: IMAPClient) -> None:
        if not client.has_capability("IDLE"):
            self.stop.wait(self.poll_seconds)
            return
        client.idle()
        try:
            deadline = time.monotonic() + min(IDLE_SECONDS, self.poll_seconds * 5)
            while not self.stop.is_set() and time.monotonic() < deadline:
                answers = client.idle_check(timeout=IDLE_CHECK_SECONDS)
                if any(len(a) > 1 and a[1] in (b"EXISTS", b"RECENT") for a in answers):
                    return
        finally:
            client.idle_done()

    def _record(self, error: str) -> None:
        try:
            MailboxCursor.objects.filter(inbox_id=self.inbox_id, folder=self.folder).update(
                last_error=error
            )
        except Exception:
            logger.debug("could not record the error", exc_info=True)


class Poller:
    """Watches every polled inbox's folders, one thread each; picks up inboxes added, changed
    or removed every ``refresh_seconds``. ``stop()`` ends every thread."""

    def __init__(self, *, refresh_seconds: float = 60.0, poll_seconds: float = POLL_SECONDS):
        self.refresh_seconds, self.poll_seconds = refresh_seconds, poll_seconds
        self.stopping = threading.Event()
        self.watchers: dict[tuple[int, str, str], tuple[FolderWatcher, threading.Event]] = {}

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.refresh()
            except Exception:
                logger.exception("could not read the inboxes to poll; trying again")
            finally:
                close_old_connections()
            self.stopping.wait(self.refresh_seconds)
        self._stop_all()
        connection.close()  # this thread's own connection (an idle session left open otherwise)

    def refresh(self) -> None:
        wanted = {
            (inbox.pk, folder, _fingerprint(settings_of(inbox)))
            for inbox in polled_inboxes()
            for folder in settings_of(inbox).imap_folders
        }
        for key in set(self.watchers) - wanted:
            watcher, stop = self.watchers.pop(key)
            stop.set()
        for key in wanted - set(self.watchers):
            stop = threading.Event()
            watcher = FolderWatcher(key[0], key[1], stop, poll_seconds=self.poll_seconds)
            self.watchers[key] = (watcher, stop)
            watcher.start()

    def stop(self) -> None:
        self.stopping.set()

    def _stop_all(self, timeout: float = 10.0) -> None:
        for _, stop in self.watchers.values():
            stop.set()
        for watcher, _ in self.watchers.values():
            watcher.join(timeout)
        self.watchers.clear()


def _fingerprint(settings: EmailSettings) -> str:
    """Changes when the connection settings change, so the watcher restarts with them."""
    parts = (settings.imap_host, settings.imap_port, settings.imap_security, settings.imap_user,
             settings.imap_password)  # fmt: skip
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
