"""A real ASGI server (uvicorn, HTTP and websockets, as `kefu run` serves) in a thread of the test
process, on the test database, and a Chromium page driven by Playwright."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from tests.conftest import CHROMIUM_PATH


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class AsgiServer:
    def __init__(self) -> None:
        import uvicorn

        from kefu.config.asgi import application

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            application, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test ASGI server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def asgi_server(transactional_db, settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    server = AsgiServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM_PATH)
        yield chromium
        chromium.close()


def watched_page(browser):
    """A page that records console errors, page errors and dialogs (a dialog fails the test)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.problems = []
    page.on(
        "console",
        lambda message: page.problems.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: page.problems.append(str(error)))

    def refuse(dialog) -> None:
        page.problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", refuse)
    return page


def sign_in(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/accounts/login/?next=/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    # Live updates are connected once the page says so.
    page.wait_for_selector("html[data-live=on]", timeout=5000)
