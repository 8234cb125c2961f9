# ruff: noqa: E501 (the corpus reads better one message per line)
"""Recall: each query finds the messages it should, in every language, on the engine in use.

The suite runs on SQLite (FTS5) by default and on PostgreSQL with
KEFU_DATABASE_URL=postgres://..., so "found on both engines" is these same tests run twice.

One corpus per module (built with real commits, so the index is written by its after-commit
subscribers as in production; flushed afterwards): a fixed set of messages in English,
Spanish, German, Simplified and Traditional Chinese, Japanese and Arabic with the spelling
variants people type, plus real tweets read at test time from ../shared/data/twcs-sample.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from pathlib import Path

import pytest
from django.core.management import call_command

from kefu.accounts.models import Agent, Role
from kefu.conversations.actions import add_note, reply
from kefu.conversations.models import Inbox, InboxMembership, Message
from kefu.search.service import search
from tests.factories import AgentFactory, StoreFactory
from tests.search.conftest import conversation_ids, customer_ids, receive

TWEETS = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "twcs-sample" / "twcs_first5001.csv"
)
TWEET_COUNT = 250

# external id -> (inbox, text, customer email, phone, name)
CORPUS = {
    "en-1": ("mail", "My package never arrived. Tracking number 1Z999AA10123456784, order #100234.",
             "alice@example.com", "+1 (415) 555-0101", "Alice Walker"),
    "en-2": ("mail", "I was charged twice for my subscription, please refund me!",
             "bob@example.com", None, "Bob Stone"),
    "en-5": ("chat", "The Bluetooth headphones stopped charging after the iOS update.",
             "carol@example.com", None, "Carol King"),
    "es-1": ("mail", "Hola, mi pedido llegó dañado y quiero un reembolso. ¿Cuándo me devolverán el dinero?",
             "maria@example.es", None, "María José Núñez"),
    "es-2": ("mail", "El envío está retrasado, número de pedido 114-3941689-8772232.",
             "pablo@example.es", None, "Pablo Ruiz"),
    "de-1": ("chat", "Die Lieferung ist beschädigt. Ich möchte eine Rückerstattung für die Bestellung.",
             "juergen@example.de", None, "Jürgen Groß"),
    "de-2": ("chat", "Grüße aus München, die Größe passt leider nicht.",
             "anna@example.de", None, "Anna Schäfer"),
    "zh-1": ("mail", "你好，我的订单号是 #100987，耳机一直没有收到。",
             "liwei@example.cn", "+86 138 0013 8000", "李伟"),
    "zh-2": ("chat", "充电器坏了，我要退款。", None, "+86 139 0000 1111", "王芳"),
    "zh-3": ("chat", "您好，我的訂單還沒到，請幫我查一下物流。", None, "+852 5123 4567", "陳大文"),
    "zh-4": ("chat", "ＩＰＨＯＮＥ１５ 屏幕碎了", None, "+86 137 0000 2222", "张伟"),
    "zh-5": ("chat", "我的iPhone充电器不能用了", None, "+86 136 0000 3333", ""),
    "ja-1": ("chat", "注文したスニーカーがまだ届きません。", "yuki@example.jp", None, "佐藤ゆき"),
    "ar-1": ("chat", "مرحباً، أين طلبي؟ لقد مرّ أسبوع ولم يصل الطلب رقم ٤٥٦٧٨.",
             None, "+966 50 123 4567", "أحمد العتيبي"),
    "ar-2": ("chat", "أُرِيدُ إِرْجَاعَ المُنْتَجِ لأنَّ المقاسَ غيرُ مناسبٍ", None, "+966 55 765 4321", "فاطمة"),
    "ar-3": ("mail", "الشحنـــة تأخرت كثيراً، هل يمكن استرداد المبلغ؟", "khalid@example.sa", None, "خالد"),
    "ar-4": ("mail", "المسؤول لم يرد على رسالتي", "omar@example.sa", None, "عمر"),
    # The same words in an inbox the agent is not a member of.
    "secret-1": ("secret", "Refund the headphones, tracking 1Z999AA10123456784. Zanzibar.",
                 "secret@example.com", "+1 415 555 0199", "Zed Secret"),
    "secret-2": ("secret", "退款 订单 耳机 أين طلبي Rückerstattung", None, "+86 135 0000 4444", "秘密"),
}  # fmt: skip

# query -> the corpus messages whose conversations it must find
EXPECTED = {
    # English: prefixes, no stemming needed for inflections that extend the word, case folding
    "refund": ["en-2"],
    "refunded": ["en-2"],  # the agent's reply in en-2's conversation
    "charged twice": ["en-2"],
    "never arrived": ["en-1"],
    "arriv": ["en-1"],
    "headphone": ["en-5"],
    "HEADPHONES": ["en-5"],
    "ios update": ["en-5"],
    "escalated": ["en-1"],  # an internal note
    "1Z999AA10123456784": ["en-1"],
    "1Z 999 AA1 01 2345 6784": ["en-1"],  # as the carrier's label groups it
    "1z999aa10123456784": ["en-1"],
    "#100234": ["en-1"],
    # Spanish and German: accents folded both ways
    "dañado": ["es-1"],
    "danado": ["es-1"],
    "DAÑADO": ["es-1"],
    "cuando reembolso": ["es-1"],
    "envio": ["es-2"],
    "114-3941689-8772232": ["es-2"],
    "beschadigt": ["de-1"],
    "Rückerstattung": ["de-1"],
    "ruckerstattung": ["de-1"],
    "grosse": ["de-2"],
    "Größe": ["de-2"],
    "munchen": ["de-2"],
    # Chinese: words as bigram phrases, single characters, Traditional = Simplified
    "耳机": ["zh-1"],
    "耳": ["zh-1"],
    "订单": ["zh-1", "zh-3"],
    "訂單": ["zh-1", "zh-3"],
    "退款": ["zh-2"],
    "充电器坏了": ["zh-2"],
    "充电器": ["zh-2", "zh-5"],
    "物流": ["zh-3"],
    "还没到": ["zh-3"],
    "没有收到": ["zh-1"],
    "屏幕": ["zh-4"],
    "iphone15": ["zh-4"],
    "iPhone充电器": ["zh-5"],
    "100987": ["zh-1"],
    # Japanese
    "スニーカー": ["ja-1"],
    "ｽﾆｰｶｰ": ["ja-1"],
    "届き": ["ja-1"],
    # Arabic: hamza, diacritics, tatweel, taa marbuta, article, digits
    "أين طلبي": ["ar-1"],
    "اين طلبي": ["ar-1"],
    "طلب": ["ar-1"],
    "45678": ["ar-1"],
    "٤٥٦٧٨": ["ar-1"],
    "ارجاع المنتج": ["ar-2"],
    "إرجاع": ["ar-2"],
    "المقاس": ["ar-2"],
    "الشحنة": ["ar-3"],
    "الشحنه": ["ar-3"],
    "استرداد": ["ar-3"],
    "مسؤول": ["ar-4"],
    "المسوول": ["ar-4"],
}

# query -> corpus messages it must NOT find (phrases are phrases; no false folding)
NOT_EXPECTED = {
    "耳机坏了": ["zh-1"],  # zh-1 has 耳机 but not 机坏/坏了
    "refund": ["zh-2"],
    "arrived never": [],
}


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        try:
            yield _build()
        finally:
            call_command("flush", interactive=False, verbosity=0)


def _build() -> dict:
    us, cn = StoreFactory(country="US"), StoreFactory(country="CN")
    inboxes = {
        "mail": Inbox.objects.create(name="Mail", kind="email", store=us),
        "chat": Inbox.objects.create(name="Chat", kind="chat", store=cn),
        "secret": Inbox.objects.create(name="Secret", kind="whatsapp", store=us),
    }
    agent = AgentFactory(username="searcher")
    for key in ("mail", "chat"):
        InboxMembership.objects.create(inbox=inboxes[key], agent=agent)
    admin = AgentFactory(username="boss", role=Role.ADMIN)
    conversations = {}
    for key, (inbox, text, email, phone, name) in CORPUS.items():
        received = receive(inboxes[inbox], key, text, email=email, phone=phone, name=name)
        conversations[key] = received.conversation
    reply(
        conversation=conversations["en-2"],
        actor=agent,
        text="We have refunded the duplicate charge.",
    )
    add_note(conversation=conversations["en-1"], actor=agent, text="Escalated to the carrier.")
    tweets = _tweets(inboxes["chat"], conversations)
    tweets_abroad = _tweets_abroad(inboxes["chat"], conversations)
    return {
        "agent": agent,
        "admin": admin,
        "inboxes": inboxes,
        "conversations": conversations,
        "tweets": tweets,
        "tweets_abroad": tweets_abroad,
    }


def _tweets(inbox: Inbox, conversations: dict) -> list[tuple[str, str]]:
    """Real inbound tweets from the sample, each with a query made of two of its rarer words."""
    with open(TWEETS, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["inbound"] == "True" and r["text"]]
    picked = []
    for row in rows[:TWEET_COUNT]:
        key = f"tweet-{row['tweet_id']}"
        received = receive(inbox, key, row["text"], name=f"@{row['author_id']}")
        conversations[key] = received.conversation
        words = sorted(
            {w for w in re.findall(r"\b[A-Za-z]{6,}\b", row["text"])}, key=lambda w: (-len(w), w)
        )
        if len(words) >= 2:
            picked.append((key, f"{words[0]} {words[1]}"))
    return picked[::5]


_ACCENTED = re.compile(r"\w*[À-ÿ]\w*")
_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]{3,}")


def _tweets_abroad(inbox: Inbox, conversations: dict) -> list[tuple[str, str]]:
    """Every real tweet of the sample in Spanish, French or Japanese (both directions), each
    with a query as someone types it: an accented word without its accents, or three
    characters of a Japanese run that no other of these tweets contains."""
    with open(TWEETS, newline="") as handle:
        rows = [
            r
            for r in csv.DictReader(handle)
            if r["text"] and (_ACCENTED.search(r["text"]) or _JAPANESE.search(r["text"]))
        ]
    texts = [row["text"] for row in rows]
    picked = []
    for row in rows:
        key = f"abroad-{row['tweet_id']}"
        conversations[key] = receive(inbox, key, row["text"], name="@abroad").conversation
        query = _unique_piece(row["text"], texts)
        if query:
            picked.append((key, query))
    return picked


def _unique_piece(text: str, texts: list[str]) -> str | None:
    for word in _ACCENTED.findall(text):
        plain = "".join(
            ch for ch in unicodedata.normalize("NFD", word) if not unicodedata.combining(ch)
        )
        if len(word) >= 5 and sum(word in other for other in texts) == 1:
            return plain.upper()
    for run in _JAPANESE.findall(text):
        for i in range(len(run) - 2):
            if sum(run[i : i + 3] in other for other in texts) == 1:
                return run[i : i + 3]
    return None


def found(world, query, who="agent", **kwargs) -> list[int]:
    return conversation_ids(search(agent=world[who], q=query, limit=50, **kwargs))


def keys(world, names) -> set[int]:
    return {world["conversations"][name].pk for name in names}


@pytest.mark.django_db
@pytest.mark.parametrize(("query", "expected"), EXPECTED.items(), ids=list(EXPECTED))
def test_query_finds_its_messages(world, query, expected):
    assert keys(world, expected) <= set(found(world, query))


@pytest.mark.django_db
@pytest.mark.parametrize(("query", "absent"), NOT_EXPECTED.items(), ids=list(NOT_EXPECTED))
def test_query_does_not_find_unrelated_messages(world, query, absent):
    assert not keys(world, absent) & set(found(world, query))


@pytest.mark.django_db
def test_real_tweets_are_found_by_their_words(world):
    assert len(world["tweets"]) >= 30
    missing = [
        (key, query)
        for key, query in world["tweets"]
        if world["conversations"][key].pk not in found(world, query)
    ]
    assert missing == []


@pytest.mark.django_db
def test_real_spanish_french_and_japanese_tweets_are_found_as_people_type(world):
    assert len(world["tweets_abroad"]) >= 60
    assert sum(not query.isascii() for _, query in world["tweets_abroad"]) >= 30  # Japanese
    missing = [
        (key, query)
        for key, query in world["tweets_abroad"]
        if world["conversations"][key].pk not in found(world, query)
    ]
    assert missing == []


@pytest.mark.django_db
def test_the_best_message_is_highlighted_in_the_snippet(world):
    results = search(agent=world["agent"], q="dañado")
    assert str(results.conversations[0].snippet).count("<mark>dañado</mark>") == 1
    arabic = search(agent=world["agent"], q="اين طلبي")
    assert "<mark>أين</mark> <mark>طلبي</mark>" in str(arabic.conversations[0].snippet)
    chinese = search(agent=world["agent"], q="訂單")
    snippets = " ".join(str(hit.snippet) for hit in chinese.conversations)
    assert "<mark>订单</mark>" in snippets and "<mark>訂單</mark>" in snippets


# --- identifiers ---------------------------------------------------------------------------------


IDENTIFIERS = {
    "alice@example.com": "en-1",
    "ALICE@Example.COM": "en-1",
    " alice@example.com ": "en-1",
    "+1 (415) 555-0101": "en-1",
    "415-555-0101": "en-1",
    "(415) 555 0101": "en-1",
    "4155550101": "en-1",
    "+14155550101": "en-1",
    "001 415 555 0101": "en-1",
    "+86 138 0013 8000": "zh-1",
    "138 0013 8000": "zh-1",  # national format of the Chinese store's country
    "0086-138-0013-8000": "zh-1",
    "8613800138000": "zh-1",
    "(+86) 13800138000": "zh-1",
    "(0086) 138-0013-8000": "zh-1",
    "٠٠٨٦ ١٣٨ ٠٠١٣ ٨٠٠٠": "zh-1",  # Arabic-Indic digits
    "+852 5123 4567": "zh-3",
    "+966501234567": "ar-1",
}


@pytest.mark.django_db
@pytest.mark.parametrize(("query", "owner"), IDENTIFIERS.items(), ids=list(IDENTIFIERS))
def test_customers_are_found_by_email_or_phone_in_any_format(world, query, owner):
    conversation = world["conversations"][owner]
    results = search(agent=world["agent"], q=query)
    assert customer_ids(results)[0] == conversation.customer_id
    assert results.customers[0].exact
    assert conversation_ids(results)[0] == conversation.pk
    assert results.conversations[0].exact


@pytest.mark.django_db
@pytest.mark.parametrize("form", ["#{}", "{}", " #{} "])
def test_a_conversation_is_found_by_its_number(world, form):
    conversation = world["conversations"]["es-2"]
    results = search(agent=world["agent"], q=form.format(conversation.pk))
    assert conversation_ids(results)[0] == conversation.pk
    assert results.conversations[0].exact


@pytest.mark.django_db
def test_an_exact_identifier_ranks_before_text_matches(world):
    # en-1's number also appears... as text elsewhere? Make it so: search the number of zh-1's
    # conversation while "100987" is text in zh-1 itself: the exact hit comes first.
    target = world["conversations"]["en-5"]
    results = search(agent=world["agent"], q=str(target.pk))
    assert results.conversations[0].conversation.pk == target.pk


@pytest.mark.django_db
def test_order_numbers_are_found_as_text_until_orders_exist(world):
    for query, key in [("#100234", "en-1"), ("100234", "en-1"), ("114-3941689-8772232", "es-2")]:
        results = search(agent=world["agent"], q=query)
        assert world["conversations"][key].pk in conversation_ids(results)
        assert "order" in {i.kind for i in results.identifiers}


# --- scope: nothing from a foreign inbox, not even a count --------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    ["zanzibar", "secret@example.com", "+1 415 555 0199", "Zed Secret", "1Z999AA10123456784"],
)
def test_foreign_inbox_hits_are_invisible(world, query):
    secret = world["conversations"]["secret-1"]
    as_admin = search(agent=world["admin"], q=query)
    as_agent = search(agent=world["agent"], q=query)

    assert secret.pk in conversation_ids(as_admin) or secret.customer_id in customer_ids(as_admin)
    assert secret.pk not in conversation_ids(as_agent)
    assert secret.customer_id not in customer_ids(as_agent)


@pytest.mark.django_db
def test_foreign_matches_change_nothing_the_agent_can_observe(world):
    only_foreign = search(agent=world["agent"], q="zanzibar")
    nothing = search(agent=world["agent"], q="qwertyuiopasdf")
    assert (only_foreign.conversations, only_foreign.customers, only_foreign.more) == (
        nothing.conversations,
        nothing.customers,
        nothing.more,
    )
    # The foreign conversation's number answers as a number nobody has.
    secret = world["conversations"]["secret-2"]
    by_number = search(agent=world["agent"], q=f"#{secret.pk}")
    missing = search(agent=world["agent"], q="#999999999")
    assert (by_number.conversations, by_number.customers, by_number.more) == ([], [], False)
    assert (missing.conversations, missing.customers, missing.more) == ([], [], False)


@pytest.mark.django_db
def test_shared_words_show_only_the_agents_own_conversations(world):
    visible = {c.pk for c in world["conversations"].values() if c.inbox.name != "Secret"}
    for query in ["退款", "订单", "耳机", "أين طلبي", "Rückerstattung", "refund", "headphones"]:
        ids = found(world, query)
        assert ids and set(ids) <= visible, query


@pytest.mark.django_db
def test_an_agent_without_inboxes_finds_nothing(world, django_assert_max_num_queries):
    loner = Agent.objects.create(username="loner")
    with django_assert_max_num_queries(1):  # the inbox lookup; no search runs at all
        results = search(agent=loner, q="refund")
    assert results.is_empty and not results.more


@pytest.mark.django_db
def test_results_link_to_the_message_that_matched(world):
    results = search(agent=world["agent"], q="refunded", limit=50)
    conversation = world["conversations"]["en-2"]
    hit = next(h for h in results.conversations if h.conversation.pk == conversation.pk)
    message = Message.objects.get(pk=hit.message_id)
    assert (message.direction, message.conversation_id) == ("outbound", conversation.pk)
