"""Run inside a server's environment (its own database), outside pytest's test database:

python -m tests.server.site setup   -> {"token": ..., "inbox_id": ...}
python -m tests.server.site count INBOX_ID  -> {external_id: number of stored messages}
"""

from __future__ import annotations

import json
import os
import sys


def setup() -> dict:
    from kefu.accounts.actions import create_token
    from kefu.accounts.models import Agent, Role
    from kefu.conversations.models import Inbox, InboxKind, InboxMembership

    agent = Agent.objects.create_user(username="crash-test", password=None, role=Role.AGENT)
    inbox = Inbox.objects.create(name="Crash test API", kind=InboxKind.API)
    InboxMembership.objects.create(inbox=inbox, agent=agent)
    _, token = create_token(user=agent, name="crash-test")
    return {"token": token, "inbox_id": inbox.pk}


def count(inbox_id: int) -> dict[str, int]:
    from django.db.models import Count

    from kefu.conversations.models import Message

    rows = (
        Message.objects.filter(inbox_id=inbox_id, external_id__isnull=False)
        .values("external_id")
        .annotate(n=Count("id"))
    )
    return {row["external_id"]: row["n"] for row in rows}


def reply() -> dict:
    from kefu.accounts.models import Agent
    from kefu.conversations import actions
    from kefu.conversations.inbound import InboundMessage
    from kefu.conversations.models import Inbox, InboxKind

    agent = Agent.objects.create_user(username="worker-test", password=None)
    inbox = Inbox.objects.create(name="Worker test API", kind=InboxKind.API)
    received = actions.receive_message(
        inbox=inbox,
        message=InboundMessage(
            external_id="w-1", identities=[("email", "w@example.com")], text="Hello?"
        ),
    )
    message = actions.reply(conversation=received.conversation, actor=agent, text="Hi!")
    return {"message_id": message.pk}


def status(message_id: int) -> dict:
    from kefu.conversations.models import Message

    return {"delivery_status": Message.objects.get(pk=message_id).delivery_status}


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kefu.config.settings")
    import django

    django.setup()
    if argv[0] == "setup":
        print(json.dumps(setup()))
    elif argv[0] == "count":
        print(json.dumps(count(int(argv[1]))))
    elif argv[0] == "reply":
        print(json.dumps(reply()))
    elif argv[0] == "status":
        print(json.dumps(status(int(argv[1]))))
    else:
        raise SystemExit(f"unknown command {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
