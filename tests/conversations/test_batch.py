"""The bulk batch path stores exactly what the one-by-one pipeline stores."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from kefu.conversations import batch
from kefu.conversations.actions import receive_message, set_status
from kefu.conversations.inbound import InboundMessage
from kefu.conversations.models import Conversation, ConversationEvent, Message, Status
from kefu.conversations.pipeline import prepare
from kefu.customers.models import Customer, Identity
from tests.factories import InboxFactory, StoreFactory


class Rollback(Exception):
    pass


def _scenario_messages(now, other_inbox):
    """Messages covering every threading and identity rule, in arrival order."""

    def msg(eid, identities, minutes_ago, **kw):
        return InboundMessage(
            external_id=eid,
            identities=identities,
            text=kw.pop("text", f"message {eid} where is my order"),
            sent_at=now - timedelta(minutes=minutes_ago),
            **kw,
        )

    return [
        msg("n1", [("email", "New@Example.com")], 50),  # new customer
        msg("n2", [("email", "new@example.com"), ("phone", "(415) 555-0100")], 40),  # same, +phone
        msg("n3", [("phone", "+1 415-555-0100")], 30),  # same person by phone
        msg("k1", [("email", "known@example.com")], 20),  # joins the known open conversation
        msg("s1", [("email", "solved@example.com")], 19),  # reopens a solved one
        msg("c1", [("email", "closed@example.com")], 18),  # closed: a new conversation
        msg("o1", [("email", "old@example.com")], 17),  # outside the window: new
        msg("t1", [("external", "chat-visitor-1")], 16, thread_key="session-9"),
        msg("t2", [("external", "chat-visitor-1")], 15, thread_key="session-9"),
        msg("r1", [("email", "other@example.com")], 14, references=["seed-known"]),  # by reference
        msg("n1", [("email", "new@example.com")], 13),  # duplicate inside the batch
        msg("seed-known", [("email", "known@example.com")], 12),  # duplicate of a stored one
        msg("z1", [("email", "zh@example.com")], 11, text="你好，我的订单什么时候发货？"),
        # the newest referenced message is in a closed conversation: no threading by reference
        msg("r2", [("email", "r2@example.com")], 10, references=["seed-known", "seed-closed"]),
        # a reference to a message of this same batch, from another identity
        msg("r3", [("email", "helper@example.com")], 9, references=["n2"]),
        msg("a1", [("email", "ar@example.com")], 8, text="مرحبا، أين طلبي؟ مرّ عشرة أيام."),
        # a reply by reference moves an older keyed conversation ahead of the newer one
        msg("t3", [("external", "chat-visitor-2")], 7, references=["seed-key-old"]),
        msg("t4", [("external", "chat-visitor-3")], 6, thread_key="session-7"),
        # the same person in another inbox: same customer, a conversation of its own there
        (other_inbox, msg("x1", [("email", "known@example.com")], 5)),
        (other_inbox, msg("x2", [("email", "KNOWN@example.com")], 4)),
        msg("k2", [("email", "known@example.com"), ("phone", "+44 20 7946 0958")], 3),
    ]


def _seed(inbox, now):
    def seed(eid, email, minutes_ago, thread_key=""):
        return receive_message(
            inbox=inbox,
            message=InboundMessage(
                external_id=eid,
                identities=[("email", email)],
                text=f"seed {eid}",
                sent_at=now - timedelta(minutes=minutes_ago),
                thread_key=thread_key,
            ),
        ).conversation

    seed("seed-known", "known@example.com", 60)
    solved = seed("seed-solved", "solved@example.com", 60)
    set_status(conversation=solved, actor=None, status=Status.SOLVED)
    closed = seed("seed-closed", "closed@example.com", 59)
    set_status(conversation=closed, actor=None, status=Status.CLOSED)
    seed("seed-old", "old@example.com", 60 * 24 * 10)
    seed("seed-key-old", "keyed-old@example.com", 58, thread_key="session-7")
    seed("seed-key-new", "keyed-new@example.com", 57, thread_key="session-7")


def _snapshot():
    def identities(customer_id):
        return tuple(
            sorted(Identity.objects.filter(customer_id=customer_id).values_list("kind", "value"))
        )

    conversations = []
    for c in Conversation.objects.all():
        conversations.append(
            (
                c.inbox.name,
                identities(c.customer_id),
                tuple(sorted(c.messages.values_list("external_id", flat=True))),
                c.status,
                c.unread_count,
                c.message_count,
                c.last_message_preview,
                c.waiting_since,
                c.language,
                c.thread_key,
                tuple(
                    sorted(
                        Counter(
                            ConversationEvent.objects.filter(conversation=c).values_list(
                                "kind", flat=True
                            )
                        ).items()
                    )
                ),
            )
        )
    customers = sorted((identities(c.pk), c.name, c.email, c.phone) for c in Customer.objects.all())
    return sorted(conversations), customers, Message.objects.count()


@pytest.mark.django_db
def test_batch_stores_what_single_messages_store():
    # Given the same stored history and the same messages
    store = StoreFactory(country="US")
    inbox = InboxFactory(store=store, name="main")
    other = InboxFactory(store=store, name="other")
    now = timezone.now()
    snapshots = {}
    for mode in ("single", "batch"):
        try:
            with transaction.atomic():
                _seed(inbox, now)
                entries = [
                    e if isinstance(e, tuple) else (inbox, e)
                    for e in _scenario_messages(now, other)
                ]
                # When they arrive one by one, or as one batch
                if mode == "single":
                    results = [receive_message(inbox=i, message=m) for i, m in entries]
                    statuses = ["created" if r.created else "duplicate" for r in results]
                else:
                    results = batch.receive_batch(entries)
                    statuses = [r["status"] for r in results]
                snapshots[mode] = (_snapshot(), statuses)
                raise Rollback
        except Rollback:
            pass
    # Then the stored state and the per-item answers are the same
    assert snapshots["batch"] == snapshots["single"]
    statuses = snapshots["single"][1]
    assert statuses.count("duplicate") == 2


@pytest.mark.django_db
def test_batch_duplicates_answer_with_the_first_ids_and_bad_items_fail_alone(inbox):
    # Given a batch with a repeat and an invalid phone
    items = [
        (
            inbox,
            InboundMessage(external_id="a", identities=[("email", "a@x.com")], text="hi there"),
        ),
        (inbox, InboundMessage(external_id="b", identities=[("phone", "not a phone")], text="x")),
        (
            inbox,
            InboundMessage(external_id="a", identities=[("email", "a@x.com")], text="hi there"),
        ),
        ("inbox 99 not found", InboundMessage(external_id="c", identities=[], text="y")),
    ]
    # When it is received
    results = batch.receive_batch(items)
    # Then
    assert [r["status"] for r in results] == ["created", "error", "duplicate", "error"]
    assert results[2]["message_id"] == results[0]["message_id"]
    assert results[2]["conversation_id"] == results[0]["conversation_id"]
    assert "phone" in results[1]["error"]
    assert Message.objects.count() == 1
    # And sending the same batch again stores nothing more
    again = batch.receive_batch(items)
    assert [r["status"] for r in again] == ["duplicate", "error", "duplicate", "error"]
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_batch_that_races_a_concurrent_writer_falls_back_to_one_by_one(inbox, monkeypatch):
    # Given a message stored by a concurrent request after the batch looked for duplicates
    stored = receive_message(
        inbox=inbox,
        message=InboundMessage(external_id="raced", identities=[("email", "r@x.com")], text="hi"),
    )
    monkeypatch.setattr(batch, "_stored_ids", lambda items: {})
    entries = [
        (inbox, InboundMessage(external_id="new", identities=[("email", "n@x.com")], text="a")),
        (inbox, InboundMessage(external_id="raced", identities=[("email", "r@x.com")], text="hi")),
    ]
    # When the batch's bulk insert hits the unique index
    results = batch.receive_batch(entries)
    # Then every item still gets its answer, the raced one with the stored ids, nothing twice
    assert [r["status"] for r in results] == ["created", "duplicate"]
    assert results[1]["message_id"] == stored.message.pk
    assert results[1]["conversation_id"] == stored.conversation.pk
    assert Message.objects.filter(external_id="raced").count() == 1
    assert Customer.objects.filter(email="n@x.com").count() == 1


# --- combining concurrent single messages ----------------------------------------------------


def _combined(monkeypatch, inbox, messages, *, fail_bulk=False):
    """Receive ``messages[0]`` and, while it is being stored, all the others at once.

    Returns (results in message order, the sizes of the batches the combiner ran).
    """
    combiner = batch.Combiner()
    sizes: list[int] = []
    gate = threading.Event()
    run_tickets = batch._run_tickets

    def run(tickets):
        sizes.append(len(tickets))
        if len(sizes) == 1:
            gate.wait(10)  # the first message holds the lead while the others queue up
        run_tickets(tickets)

    monkeypatch.setattr(batch, "_run_tickets", run)
    if fail_bulk:

        def broken(items):
            raise RuntimeError("a bug in the bulk path")

        monkeypatch.setattr(batch, "_store", broken)
    results: list = [None] * len(messages)

    def send(n):
        try:
            if isinstance(messages[n], list):  # a batch
                monkeypatch.setattr(batch, "_combiner", combiner)
                results[n] = batch.receive_batch([(inbox, m) for m in messages[n]])
            else:
                results[n] = combiner.receive_one(inbox, prepare(inbox, messages[n]))
        except Exception as exc:
            results[n] = exc
        finally:
            connection.close()

    first = threading.Thread(target=send, args=(0,))
    first.start()
    while not sizes:
        time.sleep(0.01)
    others = [threading.Thread(target=send, args=(n,)) for n in range(1, len(messages))]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 10
    while len(combiner._queue) < len(others) and time.monotonic() < deadline:
        time.sleep(0.01)
    gate.set()
    for thread in [first, *others]:
        thread.join(10)
    return results, sizes


def _inbound(eid, email, text="where is my order?"):
    return InboundMessage(external_id=eid, identities=[("email", email)], text=text)


@pytest.mark.django_db(transaction=True)
def test_single_messages_arriving_together_are_stored_in_one_batch(monkeypatch):
    # Given one message being stored while six more arrive, among them a retry and a
    # customer writing twice
    inbox = InboxFactory()
    messages = [
        _inbound("m0", "zero@example.com"),
        _inbound("m1", "one@example.com"),
        _inbound("m2", "two@example.com"),
        _inbound("m2", "two@example.com"),
        _inbound("m3", "one@example.com", "and my refund?"),
        _inbound("m4", "zero@example.com"),
        _inbound("m5", "new@example.com", "你好，我的订单什么时候发货？"),
    ]
    # When they are received through the combiner
    results, sizes = _combined(monkeypatch, inbox, messages)
    # Then the six waiting ones were stored together, each with its own answer
    assert sizes == [1, 6]
    assert not [r for r in results if isinstance(r, Exception)]
    # (the two deliveries of m2 race to the queue: either may be the stored one)
    assert [r.created for r in results[:2] + results[4:]] == [True] * 5
    assert sorted([results[2].created, results[3].created]) == [False, True]
    assert results[3].message.pk == results[2].message.pk
    assert results[3].conversation.pk == results[2].conversation.pk
    # And they threaded as they would have one by one
    assert results[4].conversation.pk == results[1].conversation.pk
    assert results[5].conversation.pk == results[0].conversation.pk
    assert Message.objects.count() == 6
    assert Customer.objects.count() == 4
    assert Conversation.objects.get(pk=results[1].conversation.pk).message_count == 2
    assert Message.objects.get(external_id="m5").language == "zh"


@pytest.mark.django_db(transaction=True)
def test_a_combined_batch_that_fails_is_received_message_by_message(monkeypatch):
    # Given a bulk path that fails for a reason other than a race
    inbox = InboxFactory()
    messages = [_inbound(f"m{n}", f"c{n % 2}@example.com") for n in range(4)]
    # When messages arrive together
    results, sizes = _combined(monkeypatch, inbox, messages, fail_bulk=True)
    # Then each is still stored, once, by the direct path
    assert sizes == [1, 3]
    assert not [r for r in results if isinstance(r, Exception)]
    assert all(r.created for r in results)
    assert Message.objects.count() == 4
    assert Customer.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_batch_and_single_messages_arriving_together_share_one_transaction(monkeypatch):
    # Given a message being stored while a batch and two single messages arrive
    inbox = InboxFactory()
    messages = [
        _inbound("m0", "zero@example.com"),
        [_inbound("b1", "one@example.com"), _inbound("b2", "two@example.com")],
        _inbound("m3", "one@example.com"),
        _inbound("b2", "two@example.com"),  # the batch's second message, delivered again
    ]
    # When they are received
    results, sizes = _combined(monkeypatch, inbox, messages)
    # Then the three waiting requests were written together, and each got its own answer
    assert sizes == [1, 3]
    assert not [r for r in results if isinstance(r, Exception)]
    batch_results = results[1]
    assert batch_results[0]["status"] == "created"
    assert results[2].conversation.pk == batch_results[0]["conversation_id"]
    # (the two deliveries of b2 race to the queue: either may be the stored one)
    assert results[3].message.pk == batch_results[1]["message_id"]
    assert sorted([results[3].created, batch_results[1]["status"] == "created"]) == [False, True]
    assert Message.objects.count() == 4


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_naming_the_same_new_people_wait_instead_of_failing(caplog):
    # Given a batch creating five new customers, not committed yet
    inbox = InboxFactory()
    first = [(inbox, _inbound(f"a{n}", f"new{n}@example.com")) for n in range(5)]
    second = [(inbox, _inbound(f"b{n}", f"new{n}@example.com", "me again")) for n in range(5)]
    holding, results = threading.Event(), {}

    def store_first():
        with transaction.atomic():
            results["first"] = batch.receive_batch(first)  # stored in this transaction
            holding.set()
            time.sleep(0.5)  # meanwhile the second batch reaches the same identities
        connection.close()

    def store_second():
        holding.wait(10)
        results["second"] = batch.receive_batch(second)
        connection.close()

    # When a second batch from the same people arrives meanwhile
    threads = [threading.Thread(target=store_first), threading.Thread(target=store_second)]
    with caplog.at_level("INFO", logger="kefu.conversations.batch"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    # Then it waited for the first and joined its customers and conversations, without a
    # failed attempt (a unique violation on the identities, and the batch stored again)
    assert [r["status"] for r in results["first"] + results["second"]] == ["created"] * 10
    assert "raced" not in caplog.text
    assert Customer.objects.count() == 5
    assert [r["conversation_id"] for r in results["second"]] == [
        r["conversation_id"] for r in results["first"]
    ]
