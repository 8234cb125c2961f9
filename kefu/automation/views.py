"""Automation pages for leads and admins: an overview of SLA policies, business hours, rules
(with a dry run), templates and routing, and the "SLA at risk" list for every agent.

Pages extend the workspace's "base.html" when it exists, else a minimal local layout. Editing
goes through the REST API and the back office (Django admin), both of which call
``kefu.automation.actions``.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.utils import timezone
from django.utils.translation import gettext as _

from kefu.automation import engine, selectors
from kefu.automation.models import InboxRouting
from kefu.conversations.selectors import conversations_visible_to, inboxes_visible_to
from kefu.core.errors import KefuError


def _base() -> str:
    try:
        get_template("base.html")
    except TemplateDoesNotExist:
        return "automation/_layout.html"
    return "base.html"


def _page(request: HttpRequest, name: str, context: dict, status: int = 200) -> HttpResponse:
    return render(request, name, {"base_template": _base(), **context}, status=status)


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    user = request.user
    try:
        selectors.require_manager(user)  # type: ignore[arg-type]
    except KefuError as exc:
        return _page(request, "automation/denied.html", {"detail": exc.message}, status=403)
    inboxes = list(inboxes_visible_to(user).order_by("name"))  # type: ignore[arg-type]
    routing = {r.inbox_id: r for r in InboxRouting.objects.filter(inbox__in=inboxes)}
    return _page(
        request,
        "automation/overview.html",
        {
            "title": _("Automation"),
            "policies": selectors.policies_for(user),  # type: ignore[arg-type]
            "hours": selectors.hours_for(user),  # type: ignore[arg-type]
            "rules": selectors.rules_for(user),  # type: ignore[arg-type]
            "templates": selectors.templates_for(user, include_inactive=True),  # type: ignore[arg-type]
            "routing": [(inbox, routing.get(inbox.pk)) for inbox in inboxes],
        },
    )


@login_required
def dry_run(request: HttpRequest, rule_id: int) -> HttpResponse:
    user = request.user
    try:
        rule = selectors.get_rule(user, rule_id)  # type: ignore[arg-type]
    except KefuError as exc:
        return _page(request, "automation/denied.html", {"detail": exc.message}, status=404)
    last = int(request.GET.get("last") or 50)
    rows = engine.dry_run(
        rule=engine.compile_rule(rule),
        conversations=conversations_visible_to(user),  # type: ignore[arg-type]
        last=last,
    )
    return _page(
        request,
        "automation/dry_run.html",
        {"title": _("Dry run"), "rule": rule, "rows": rows, "last": last},
    )


@login_required
def at_risk(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    minutes = int(request.GET.get("within") or 60)
    rows = selectors.at_risk(request.user, until=now + timedelta(minutes=minutes))  # type: ignore[arg-type]
    return _page(
        request,
        "automation/at_risk.html",
        {"title": _("SLA at risk"), "rows": rows, "now": now, "within": minutes},
    )
