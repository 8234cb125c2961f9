from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Serve kefu with granian for production: --interface wsgi for pages and the API "
        "(several workers), asgi for websockets. Run `kefu worker` beside it."
    )

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument(
            "--threads",
            type=int,
            default=16,
            help="blocking threads per wsgi worker (concurrent messages are then stored together)",
        )
        parser.add_argument("--interface", choices=["wsgi", "asgi"], default="wsgi")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        from granian import Granian
        from granian.constants import Interfaces

        interface = options["interface"]
        target = (
            "kefu.config.wsgi:application"
            if interface == "wsgi"
            else "kefu.config.asgi:application"
        )
        server = Granian(
            target,
            address=options["host"],
            port=options["port"],
            interface=Interfaces.WSGI if interface == "wsgi" else Interfaces.ASGI,
            workers=options["workers"],
            blocking_threads=options["threads"] if interface == "wsgi" else 1,
            log_access=False,
        )
        server.serve()
