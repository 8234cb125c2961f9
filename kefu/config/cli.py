"""The ``kefu`` command: Django's management commands with kefu's settings preset.

``kefu`` alone (or ``kefu help``) shows kefu's own commands first; ``kefu help --all`` lists
every management command, Django's included; ``kefu help COMMAND`` shows a command's options.
"""

from __future__ import annotations

import os
import sys

USAGE = """\
kefu {version}: customer service for online sellers.

Usage: kefu <command> [options]

Start here
  run [--demo] [--port 8000]    apply migrations, start the background worker and the server
                                in one process; --demo seeds demo data into an empty database
  demo [--force]                seed demo data (refuses a database that has data)
  token create --user NAME      print a new API token (also: token list, token revoke PREFIX)

At scale (docs/deploy.md)
  serve --interface wsgi|asgi   production server (granian): wsgi workers for pages and the
        [--workers N]           API, asgi for websockets
  worker                        run background tasks (database queue, or RQ on Redis when
                                KEFU_REDIS_URL is set); run as many as the load needs
  poll_mail [--once | --enqueue]
                                read the email inboxes' IMAP mailboxes (IDLE); --once: one
                                pass; --enqueue: poll periodically on the background worker

Administration
  configure_channel --inbox N key=value ...
                                store a Telegram, WhatsApp or email inbox's settings
                                (env:NAME reads a secret from the environment)
  migrate                       apply database migrations
  createsuperuser               create an admin login
  changepassword USERNAME       set a login's password
  shell, dbshell, check         Python shell, database shell, system checks

`kefu help COMMAND` shows a command's options; `kefu help --all` lists every command.
Settings come from KEFU_* environment variables (docs/configuration.md).
"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kefu")
    except PackageNotFoundError:
        return "(not installed)"


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    arguments = argv[1:]
    if arguments in ([], ["help"], ["-h"], ["--help"]):
        sys.stdout.write(USAGE.format(version=_version()))
        return
    if arguments == ["--version"]:
        sys.stdout.write(f"kefu {_version()}\n")
        return
    if arguments == ["help", "--all"]:
        argv = [argv[0], "help"]  # Django's list of every command
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kefu.config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(argv)


if __name__ == "__main__":
    main()
