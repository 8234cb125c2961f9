"""GET /search/?q=...: the workspace's search box asks over htmx and gets the results fragment;
any other request (the box's form without JavaScript, a link) gets the full results page.

The same service and filters as the API; the fragment groups conversations, customers and
orders, with highlighted snippets (escaped text, our <mark>). The box itself is
``search/partials/box.html``, for the workspace's header to include.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from ninja.errors import ValidationError as NinjaValidationError
from pydantic import ValidationError

from kefu.core.errors import InvalidInput
from kefu.search import service
from kefu.search.api import SearchParams, filters_from


@require_GET
@login_required
def results(request: HttpRequest) -> HttpResponse:
    """The grouped results for ``q`` and the API's filters (status, inbox, channel, assignee,
    since, until, limit): the fragment for htmx, the page otherwise. A bad filter renders the
    error in place (422)."""
    q = request.GET.get("q", "").strip()
    # search_q / search_page: the box's own names, since it is included in other apps' pages.
    context: dict = {"q": q, "search_q": q, "search_page": True}
    status = 200
    try:
        params = SearchParams(
            **{k: v for k, v in request.GET.items() if v != ""} | {"q": context["q"]}
        )
        context["results"] = service.search(
            agent=request.user,  # type: ignore[arg-type]
            q=params.q,
            filters=filters_from(params),
            limit=params.limit,
        )
    except (InvalidInput, ValidationError, NinjaValidationError) as exc:
        context["error"] = getattr(exc, "message", None) or str(exc).splitlines()[0]
        status = 422
    htmx = getattr(request, "htmx", False)
    template = "search/partials/results.html" if htmx else "search/page.html"
    return render(request, template, context, status=status)
