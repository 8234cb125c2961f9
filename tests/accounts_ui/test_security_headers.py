"""A strict Content-Security-Policy and the other security headers on every response."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import kefu
from kefu.core.csp import CSP_HEADER, email_frame_policy

pytestmark = pytest.mark.django_db

EXPECTED = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "frame-src": "'self'",
    "object-src": "'none'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
    "base-uri": "'none'",
    "connect-src": "'self' ws://testserver",
}


def directives(header: str) -> dict[str, str]:
    parsed = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition(" ")
        parsed[name] = value
    return parsed


def assert_strict(response) -> None:
    assert directives(response[CSP_HEADER]) == EXPECTED
    assert "unsafe" not in response[CSP_HEADER]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]


def test_signed_out_pages_carry_the_policy(client):
    for path in ["/accounts/login/", "/accounts/invitation/forged/", "/no/such/page/"]:
        response = client.get(path)
        assert response.status_code in (200, 404), path
        assert_strict(response)


def test_signed_in_pages_carry_the_policy(admin_client):
    for path in [
        "/accounts/preferences/",
        "/accounts/password/",
        "/accounts/agents/",
        "/accounts/teams/",
        "/accounts/invitations/",
        "/accounts/audit/",
    ]:
        response = admin_client.get(path)
        assert response.status_code == 200, path
        assert response["Content-Type"].startswith("text/html")
        assert_strict(response)


def test_forms_that_fail_and_api_answers_carry_it_too(client, api):
    refused = client.post("/accounts/login/", {"username": "x", "password": "y"})
    assert_strict(refused)
    assert_strict(api.get("/api/v1/conversations"))


def test_over_https_websockets_are_allowed_as_wss_only(client):
    response = client.get("/accounts/login/", secure=True)
    assert directives(response[CSP_HEADER])["connect-src"] == "'self' wss://testserver"


def test_a_view_may_set_its_own_policy_for_an_email_frame():
    blocked = directives(email_frame_policy(allow_remote_images=False))
    allowed = directives(email_frame_policy(allow_remote_images=True))
    assert blocked["img-src"] == "data:"
    assert "https:" in allowed["img-src"]
    for policy in (blocked, allowed):
        assert policy["default-src"] == "'none'"
        assert "script-src" not in policy  # default-src 'none' covers scripts
        assert policy["sandbox"].split()[0] == "allow-popups"  # no allow-scripts/same-origin
        assert policy["frame-ancestors"] == "'self'"


TEMPLATES = sorted(Path(kefu.__file__).parent.glob("**/templates/**/*.html"))


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p).split("kefu/", 1)[-1])
def test_no_template_relies_on_what_the_policy_blocks(template):
    """Inline scripts, event-handler attributes, style attributes and <style> blocks would be
    blocked by the browser: kefu's own templates have none (JS and CSS live in static files)."""
    html = template.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert not re.search(r"<style\b", html), "<style> block"
    assert not re.search(r"\sstyle=", html), "style attribute"
    assert not re.search(r"\son[a-z]+\s*=", html), "event-handler attribute"
    assert "javascript:" not in html.lower()
