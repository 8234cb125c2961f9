"""``kefu run``: everything in one process, for one machine and for trying kefu out."""

from __future__ import annotations

import socket
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from kefu.core.tasks_worker import InProcessWorker, start_in_process_worker


class Command(BaseCommand):
    help = (
        "Run kefu in one process: apply migrations, start the background worker and the ASGI "
        "server (pages, API, websockets). --demo seeds demo data into an empty database."
    )

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, default=8000, help="port to listen on")
        parser.add_argument(
            "--demo", action="store_true", help="seed demo data when the database is empty"
        )

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        import uvicorn

        host, port = options["host"], options["port"]
        _check_port_free(host, port)
        call_command("migrate", interactive=False, verbosity=0)
        if options["demo"]:
            self._seed_demo()
        worker = start_in_process_worker()
        self._banner(f"http://{_url_host(host)}:{port}", demo=options["demo"], worker=worker)
        try:
            uvicorn.run(
                "kefu.config.asgi:application",
                host=host,
                port=port,
                log_level="warning",
                lifespan="off",
            )
        finally:
            if worker is not None:
                worker.stop(timeout=10)

    def _seed_demo(self) -> None:
        from kefu.core.demo import seed_demo_if_empty

        if not seed_demo_if_empty(stdout=self.stdout):
            self.stdout.write(
                "The database already has data, so no demo data was added "
                "(`kefu demo --force` adds it anyway)."
            )

    def _banner(self, url: str, *, demo: bool, worker: InProcessWorker | None) -> None:
        write = self.stdout.write
        write(self.style.SUCCESS(f"kefu is running at {url}"))
        logins = _demo_logins() if demo else []
        if logins:
            write("  Sign in with a demo login (demo data only; change them for real use):")
            for username, password, role in logins:
                write(f"    {username:<6} / {password}   ({role})")
        write(f"  API: {url}/api/v1/docs   token: kefu token create --user NAME")
        for name, key in _chat_widgets():
            write(f"  Chat widget ({name}): {url}/connectors/chat/{key}/demo")
        if worker is None:
            write("  Background tasks go to Redis: run `kefu worker` beside this process.")
        write(f"  Data: {settings.VAR_DIR}   Stop: Ctrl+C")
        sys.stdout.flush()


def _chat_widgets() -> list[tuple[str, str]]:
    """(name, widget key) of the active chat inboxes, to point at their demo pages."""
    from kefu.conversations.models import Inbox, InboxKind

    inboxes = Inbox.objects.filter(kind=InboxKind.CHAT, is_active=True).order_by("pk")[:3]
    return [(inbox.name, str(inbox.config.get("widget_key", ""))) for inbox in inboxes]


def _demo_logins() -> list[tuple[str, str, str]]:
    """DEMO_LOGINS whose users exist (a database seeded before, or just now)."""
    from kefu.accounts.models import Agent
    from kefu.core.demo import DEMO_LOGINS

    existing = set(
        Agent.objects.filter(username__in=[u for u, _, _ in DEMO_LOGINS]).values_list(
            "username", flat=True
        )
    )
    return [login for login in DEMO_LOGINS if login[0] in existing]


def _url_host(host: str) -> str:
    """The address to print: a wildcard listener is reached through 127.0.0.1."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 (we only print a reachable address)
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _check_port_free(host: str, port: int) -> None:
    """Fail before migrating and seeding when another process has the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CommandError(
                f"cannot listen on {host}:{port} ({exc.strerror}); is kefu already running? "
                f"Try --port {port + 1}."
            ) from None
