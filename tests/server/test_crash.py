"""kill -9 while messages arrive: nothing acknowledged is lost, nothing retried is stored twice.

A real ``kefu serve --interface wsgi --workers 2`` process group on its own database takes
messages from concurrent clients; at a random moment the whole group is killed with SIGKILL and
started again. Clients then retry every message that did not get a 2xx, and some that did.
"""

from __future__ import annotations

import random
import threading

import httpx
import pytest

from tests.server.conftest import run_site

pytestmark = pytest.mark.server

CLIENTS = 8
PER_CLIENT = 50
CUSTOMERS = 12
ACKED_RETRIES = 25


class Submitter:
    """Concurrent clients posting messages; records which ones were acknowledged with a 2xx."""

    def __init__(self, url: str, token: str, inbox_id: int) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.inbox_id = inbox_id
        self.acked: dict[str, int] = {}  # external_id -> message id
        self.not_acked: set[str] = set()
        self.lock = threading.Lock()
        self.ack_count = threading.Condition(self.lock)

    def payload(self, external_id: str) -> dict:
        customer = int(external_id.rsplit("-", 1)[1]) % CUSTOMERS
        return {
            "inbox_id": self.inbox_id,
            "external_id": external_id,
            "customer": {"name": f"Buyer {customer}", "email": f"buyer{customer}@example.com"},
            "text": f"Order status please ({external_id})",
        }

    def send(self, client: httpx.Client, external_id: str) -> int | None:
        """The message id when acknowledged with a 2xx, None otherwise."""
        try:
            response = client.post("/api/v1/messages", json=self.payload(external_id))
        except httpx.HTTPError:
            return None
        if 200 <= response.status_code < 300:
            return int(response.json()["message_id"])
        return None

    def run_client(self, external_ids: list[str]) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=30) as client:
            for external_id in external_ids:
                message_id = self.send(client, external_id)
                with self.lock:
                    if message_id is None:
                        self.not_acked.add(external_id)
                    else:
                        self.acked[external_id] = message_id
                        self.ack_count.notify_all()

    def start(self, batches: list[list[str]]) -> list[threading.Thread]:
        threads = [threading.Thread(target=self.run_client, args=(b,)) for b in batches]
        for thread in threads:
            thread.start()
        return threads

    def wait_for_acks(self, count: int, threads: list[threading.Thread]) -> None:
        with self.lock:
            self.ack_count.wait_for(
                lambda: len(self.acked) >= count or not any(t.is_alive() for t in threads),
                timeout=120,
            )


@pytest.mark.timeout(600)
def test_kill_9_loses_no_acknowledged_message_and_retries_store_none_twice(site_env, make_server):
    # Given a real server with two WSGI workers on a fresh database, and an API inbox
    site = run_site(site_env, "setup")
    server = make_server(site_env, "serve", "--interface", "wsgi", "--workers", "2").start()
    seed = random.randrange(1_000_000)
    chance = random.Random(seed)
    total = CLIENTS * PER_CLIENT
    external_ids = [f"crash-{seed}-{n}" for n in range(total)]
    batches = [external_ids[n::CLIENTS] for n in range(CLIENTS)]
    submitter = Submitter(server.url, site["token"], site["inbox_id"])

    # When clients submit concurrently and the server is killed -9 at a random moment
    kill_after = chance.randrange(total // 10, total // 2)
    threads = submitter.start(batches)
    submitter.wait_for_acks(kill_after, threads)
    server.kill_hard()
    for thread in threads:
        thread.join()
    acked_before_kill = dict(submitter.acked)
    assert len(acked_before_kill) >= kill_after, f"seed {seed}: {server.output()}"
    assert submitter.not_acked, f"seed {seed}: the kill came after the last message"

    # (Some unacknowledged messages may have been stored: committed, but the answer was lost.)
    stored_at_kill = run_site(site_env, "count", str(site["inbox_id"]))
    assert isinstance(stored_at_kill, dict)
    print(
        f"seed {seed}: killed after {len(acked_before_kill)} acknowledgements; "
        f"{len(submitter.not_acked)} unacknowledged, "
        f"{len(submitter.not_acked & set(stored_at_kill))} of them stored"
    )

    # ...and, once it is back, every unacknowledged message and some acknowledged ones are retried
    server.start()
    retried = sorted(submitter.not_acked) + chance.sample(
        sorted(acked_before_kill), min(ACKED_RETRIES, len(acked_before_kill))
    )
    with httpx.Client(base_url=server.url, headers=submitter.headers, timeout=30) as client:
        retry_ids = {external_id: submitter.send(client, external_id) for external_id in retried}

    # Then every retry is acknowledged, a retried acknowledged message keeps its id,
    assert [e for e, message_id in retry_ids.items() if message_id is None] == [], f"seed {seed}"
    for external_id, message_id in acked_before_kill.items():
        if external_id in retry_ids:
            assert retry_ids[external_id] == message_id, f"seed {seed}: {external_id}"

    # ...and each message is stored exactly once: the acknowledged ones and the retried ones
    stored = run_site(site_env, "count", str(site["inbox_id"]))
    assert isinstance(stored, dict)
    lost = [e for e in acked_before_kill if stored.get(e, 0) == 0]
    doubled = {e: n for e, n in stored.items() if n != 1}
    missing_retried = [e for e in retried if stored.get(e, 0) != 1]
    assert lost == [], f"seed {seed}: acknowledged but lost"
    assert doubled == {}, f"seed {seed}: stored more than once"
    assert missing_retried == [], f"seed {seed}"
    assert set(stored) == set(external_ids), f"seed {seed}"
