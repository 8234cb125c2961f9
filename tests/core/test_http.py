"""kefu.core.http against a real local HTTP server: guard, redirects, retries, timeouts, caps."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured

from kefu.core import http

Handler = Callable[[BaseHTTPRequestHandler], None]


class LocalServer:
    """A real HTTP server on 127.0.0.1; ``routes`` maps a path to a handler, ``seen`` logs hits."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.seen: list[tuple[str, str]] = []
        owner = self

        class _Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                owner.seen.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                route = owner.routes.get(self.path)
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                route(self)

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        # A client that timed out leaves a broken pipe behind; that is the test, not an error.
        self.server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def hits(self, path: str) -> int:
        return sum(1 for _, seen_path in self.seen if seen_path == path)


def reply(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Handler:
    def handler(request: BaseHTTPRequestHandler) -> None:
        request.send_response(status)
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    return handler


def sequence(*handlers: Handler) -> Handler:
    """Answer with the handlers in turn, repeating the last one."""
    calls = iter(handlers)
    last: list[Handler] = []

    def handler(request: BaseHTTPRequestHandler) -> None:
        current = next(calls, None)
        if current is not None:
            last[:] = [current]
        last[0](request)

    return handler


@pytest.fixture
def server() -> Iterator[LocalServer]:
    local = LocalServer()
    thread = threading.Thread(target=local.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield local
    local.server.shutdown()
    local.server.server_close()


@pytest.fixture
def allow_loopback(settings):
    """Exempt exactly 127.0.0.1 (not the rest of 127/8, nor any other private range)."""
    settings.KEFU_HTTP_ALLOW_PRIVATE = ["127.0.0.1/32"]


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    """Backoff pauses are recorded instead of slept: the schedule is asserted, not timed."""
    pauses: list[float] = []
    monkeypatch.setattr(http, "_sleep", pauses.append)
    return pauses


# --- the guard ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://224.0.0.1/",
    ],
)
def test_internal_addresses_are_refused_by_default(settings, url):
    settings.KEFU_HTTP_ALLOW_PRIVATE = []

    with pytest.raises(http.BlockedDestination):
        http.request("GET", url)


def test_a_refused_address_is_never_contacted_nor_retried(settings, server, no_sleep):
    # Given a real server on loopback, and no exemption
    settings.KEFU_HTTP_ALLOW_PRIVATE = []
    server.routes["/"] = reply(200, b"secret")

    # When kefu is asked to fetch it
    with pytest.raises(http.BlockedDestination):
        http.request("GET", server.url + "/", retries=3)

    # Then the server never saw a request, and nothing was retried
    assert server.seen == []
    assert no_sleep == []


@pytest.mark.parametrize("url", ["ftp://example.com/file", "file:///etc/passwd", "gopher://x/"])
def test_only_http_and_https_are_allowed(url):
    with pytest.raises(http.BlockedDestination):
        http.request("GET", url)


def test_an_exempted_network_is_reachable(allow_loopback, server):
    server.routes["/hello"] = reply(200, b"hi", {"Content-Type": "text/plain"})

    response = http.request("GET", server.url + "/hello")

    assert response.status_code == 200
    assert response.text == "hi"


def test_exemptions_are_exact_networks(allow_loopback):
    assert http.is_allowed_address("127.0.0.1")
    assert not http.is_allowed_address("127.0.0.2")
    assert not http.is_allowed_address("10.0.0.1")
    assert http.is_allowed_address("93.184.216.34")


def test_star_exempts_everything(settings):
    settings.KEFU_HTTP_ALLOW_PRIVATE = ["*"]

    assert http.is_allowed_address("10.0.0.1")
    assert http.is_allowed_address("::1")


def test_a_malformed_exemption_fails_loudly(settings):
    settings.KEFU_HTTP_ALLOW_PRIVATE = ["not-a-network"]

    with pytest.raises(ImproperlyConfigured, match="KEFU_HTTP_ALLOW_PRIVATE"):
        http.is_allowed_address("8.8.8.8")


# --- redirects ---------------------------------------------------------------------------------


def test_redirects_are_not_followed_unless_asked(allow_loopback, server):
    server.routes["/moved"] = reply(302, headers={"Location": "/here"})
    server.routes["/here"] = reply(200, b"here")

    response = http.request("GET", server.url + "/moved")

    assert response.status_code == 302
    assert server.hits("/here") == 0


def test_a_followed_redirect_to_an_allowed_address_works(allow_loopback, server):
    server.routes["/moved"] = reply(302, headers={"Location": "/here"})
    server.routes["/here"] = reply(200, b"here")

    response = http.request("GET", server.url + "/moved", follow_redirects=True)

    assert response.status_code == 200
    assert response.text == "here"


def test_a_redirect_to_an_internal_address_is_refused(allow_loopback, server):
    # Given an allowed server that redirects to another loopback address (not exempted)
    server.routes["/moved"] = reply(
        302, headers={"Location": f"http://127.0.0.2:{server.port}/internal"}
    )
    server.routes["/internal"] = reply(200, b"secret")

    # When the redirect is followed, then it is refused before any connection
    with pytest.raises(http.BlockedDestination):
        http.request("GET", server.url + "/moved", follow_redirects=True)
    assert server.hits("/internal") == 0


def test_a_redirect_to_cloud_metadata_is_refused(allow_loopback, server):
    server.routes["/moved"] = reply(
        301, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )

    with pytest.raises(http.BlockedDestination):
        http.request("GET", server.url + "/moved", follow_redirects=True)


# --- retries and timeouts ----------------------------------------------------------------------


def test_a_5xx_is_retried_with_growing_backoff(allow_loopback, server, no_sleep):
    server.routes["/flaky"] = sequence(reply(503), reply(502), reply(200, b"ok"))

    response = http.request("GET", server.url + "/flaky", retries=3, backoff=1.0)

    assert response.status_code == 200
    assert server.hits("/flaky") == 3
    # Full jitter: each pause is within the doubling ceiling (1 s, then 2 s).
    assert len(no_sleep) == 2
    assert 0 <= no_sleep[0] <= 1.0
    assert 0 <= no_sleep[1] <= 2.0


def test_retries_stop_after_the_limit_and_return_the_last_answer(allow_loopback, server):
    server.routes["/down"] = reply(500, b"still down")

    response = http.request("GET", server.url + "/down", retries=2)

    assert response.status_code == 500
    assert response.text == "still down"
    assert server.hits("/down") == 3


def test_a_4xx_is_returned_at_once(allow_loopback, server):
    server.routes["/missing"] = reply(404)

    response = http.request("GET", server.url + "/missing", retries=3)

    assert response.status_code == 404
    assert server.hits("/missing") == 1


def test_retry_after_is_honoured_within_the_cap(allow_loopback, server, no_sleep):
    server.routes["/busy"] = sequence(reply(429, headers={"Retry-After": "120"}), reply(200))

    response = http.request("GET", server.url + "/busy", max_backoff=7.0)

    assert response.status_code == 200
    assert no_sleep == [7.0]


def test_a_post_is_not_resent_on_a_5xx_unless_allowed(allow_loopback, server):
    server.routes["/hook"] = reply(503)

    once = http.request("POST", server.url + "/hook", json={"a": 1}, retries=2)
    assert once.status_code == 503
    assert server.hits("/hook") == 1

    http.request("POST", server.url + "/hook", json={"a": 1}, retries=2, retry_unsafe=True)
    assert server.hits("/hook") == 4


def slow(seconds: float) -> Handler:
    def handler(request: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        reply(200, b"late")(request)

    return handler


def test_a_read_timeout_is_retried_then_raised(allow_loopback, server):
    server.routes["/slow"] = slow(1.0)

    with pytest.raises(httpx.ReadTimeout):
        http.request("GET", server.url + "/slow", retries=1, timeout=0.2)
    assert server.hits("/slow") == 2


def test_connection_refused_is_retried_for_any_method(allow_loopback, server, no_sleep):
    # Given a port nobody listens on (the server was closed)
    url = server.url + "/gone"
    server.server.shutdown()
    server.server.server_close()

    with pytest.raises(httpx.ConnectError):
        http.request("POST", url, json={}, retries=2)
    assert len(no_sleep) == 2


# --- bodies ------------------------------------------------------------------------------------


def test_an_oversized_body_is_refused(allow_loopback, server):
    server.routes["/big"] = reply(200, b"x" * 2048)

    with pytest.raises(http.ResponseTooLarge):
        http.request("GET", server.url + "/big", max_bytes=1024)


def test_a_compressed_body_is_decoded(allow_loopback, server):
    server.routes["/gz"] = reply(200, gzip.compress(b'{"ok": true}'), {"Content-Encoding": "gzip"})

    response = http.request("GET", server.url + "/gz")

    assert response.json() == {"ok": True}


def test_a_session_keeps_its_base_url_and_headers(allow_loopback, server):
    seen_headers: dict[str, str] = {}

    def handler(request: BaseHTTPRequestHandler) -> None:
        seen_headers.update(request.headers)
        reply(200, b"ok")(request)

    server.routes["/api/ping"] = handler
    with http.client(base_url=server.url + "/api", headers={"X-Token": "t"}) as session:
        response = http.request("GET", "/ping", session=session)

    assert response.status_code == 200
    assert seen_headers["X-Token"] == "t"
    assert seen_headers["User-Agent"].startswith("kefu")


def test_proxy_environment_is_ignored(allow_loopback, server, monkeypatch):
    # A proxy would see (and could rewrite) the destination, bypassing the address check.
    monkeypatch.setenv("HTTP_PROXY", "http://203.0.113.1:3128")
    monkeypatch.setenv("ALL_PROXY", "http://203.0.113.1:3128")
    server.routes["/direct"] = reply(200, b"direct")

    response = http.request("GET", server.url + "/direct", retries=0)

    assert response.text == "direct"
