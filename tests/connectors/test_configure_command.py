"""``kefu configure_channel``: a person sets a channel inbox up from the command line."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from kefu.connectors.telegram.config import settings_of
from tests.factories import InboxFactory

pytestmark = pytest.mark.django_db


def test_secrets_come_from_the_environment_and_are_stored_encrypted(monkeypatch, capsys):
    inbox = InboxFactory(kind="telegram")
    monkeypatch.setenv("TG_TOKEN", "123456:ABC-DEF")

    call_command(
        "configure_channel",
        "--inbox",
        str(inbox.pk),
        "bot_token=env:TG_TOKEN",
        "webhook_secret=s3cret",
    )

    inbox.refresh_from_db()
    assert "123456:ABC-DEF" not in json.dumps(inbox.config)
    assert settings_of(inbox).bot_token == "123456:ABC-DEF"
    assert settings_of(inbox).webhook_secret == "s3cret"
    assert "bot_token, webhook_secret stored" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("kind", "pairs", "message"),
    [
        ("telegram", ["colour=red"], "unknown setting(s) colour"),
        ("telegram", ["bot_token"], "expected key=value"),
        ("telegram", ["bot_token=env:NOT_SET_ANYWHERE"], "NOT_SET_ANYWHERE is not set"),
        ("api", ["x=1"], "nothing to configure"),
    ],
)
def test_mistakes_are_refused_with_a_reason_and_store_nothing(kind, pairs, message):
    inbox = InboxFactory(kind=kind)
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("configure_channel", "--inbox", str(inbox.pk), *pairs)
    inbox.refresh_from_db()
    assert inbox.config == {}
