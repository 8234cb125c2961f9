"""Per-agent interface language (English, Simplified Chinese, Arabic right to left), time zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.utils import timezone

from kefu.accounts.models import AuditLog
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db


def html_tag(response) -> str:
    return re.search(rb"<html[^>]*>", response.content).group(0).decode()


def test_an_arabic_speaking_agent_gets_arabic_laid_out_right_to_left(client):
    client.force_login(AgentFactory(language="ar"))
    response = client.get("/accounts/preferences/")
    assert html_tag(response) == '<html lang="ar" dir="rtl">'
    assert "التفضيلات" in response.content.decode()  # "Preferences"
    assert response["Content-Language"] == "ar"


def test_switching_to_chinese_in_preferences(client):
    agent = AgentFactory(language="en")
    client.force_login(agent)
    assert "Preferences" in client.get("/accounts/preferences/").content.decode()

    response = client.post(
        "/accounts/preferences/",
        {"language": "zh-hans", "timezone": "Asia/Shanghai", "display_name": "小魏"},
    )
    assert response.status_code == 302
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    page = client.get("/accounts/preferences/")
    assert html_tag(page) == '<html lang="zh-Hans" dir="ltr">'
    assert "偏好设置" in page.content.decode()
    assert "偏好设置已保存。" in page.content.decode()  # the confirmation, in the new language
    agent.refresh_from_db()
    assert (agent.language, agent.timezone, agent.display_name) == (
        "zh-hans",
        "Asia/Shanghai",
        "小魏",
    )
    [entry] = AuditLog.objects.filter(action="agent.preferences_changed")
    assert entry.data == {
        "language": "zh-hans",
        "timezone": "Asia/Shanghai",
        "display_name": "小魏",
    }


def test_switching_to_arabic_gives_rtl(client):
    client.force_login(AgentFactory(language="en"))
    client.post("/accounts/preferences/", {"language": "ar", "timezone": "Asia/Dubai"})
    page = client.get("/accounts/password/")
    assert html_tag(page) == '<html lang="ar" dir="rtl">'
    assert "تغيير كلمة المرور" in page.content.decode()  # "Change password"


def test_the_agents_choice_wins_over_the_browsers(client):
    client.force_login(AgentFactory(language="zh-hans"))
    response = client.get("/accounts/preferences/", HTTP_ACCEPT_LANGUAGE="ar,en;q=0.5")
    assert html_tag(response) == '<html lang="zh-Hans" dir="ltr">'


def test_signed_out_the_browser_language_is_used_and_can_be_switched(client):
    arabic = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="ar")
    assert html_tag(arabic) == '<html lang="ar" dir="rtl">'
    assert "تسجيل الدخول إلى kefu" in arabic.content.decode()

    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/accounts/login/"})
    chinese = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="ar")
    assert "登录 kefu" in chinese.content.decode()


def test_sign_in_remembers_the_agents_language_for_the_sign_in_page(client):
    AgentFactory(username="omar", language="ar")
    response = client.post(
        "/accounts/login/", {"username": "omar", "password": "correct horse battery"}
    )
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "ar"


def test_an_unknown_language_or_time_zone_is_refused(client):
    agent = AgentFactory(language="en", timezone="UTC")
    client.force_login(agent)
    for data in (
        {"language": "xx", "timezone": "UTC"},
        {"language": "ar", "timezone": "Mars/Base"},
    ):
        assert client.post("/accounts/preferences/", data).status_code == 200
    agent.refresh_from_db()
    assert (agent.language, agent.timezone) == ("en", "UTC")


def test_times_are_shown_in_the_agents_time_zone(client, admin):
    admin.timezone = "Asia/Shanghai"
    admin.save()
    entry = AuditLog.objects.create(action="test.entry", object_type="x", object_id="1")
    AuditLog.objects.filter(pk=entry.pk).update(created_at=datetime(2026, 1, 1, tzinfo=UTC))
    client.force_login(admin)
    response = client.get("/accounts/audit/")
    assert b'datetime="2026-01-01T08:00:00+08:00"' in response.content
    # The zone is per request: nothing of it stays on the thread afterwards.
    assert timezone.get_current_timezone_name() == "UTC"


def test_an_agent_with_an_unknown_stored_zone_sees_utc(client):
    agent = AgentFactory(timezone="Atlantis/Capital", language="en")
    client.force_login(agent)
    assert "UTC" in client.get("/accounts/preferences/").content.decode()
