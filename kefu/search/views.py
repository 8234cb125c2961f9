"""The workspace's search box calls this over htmx: GET /search/?q=... -> a results fragment.

The same service and filters as the API; the fragment lists conversations, customers and orders
(once the commerce app registers them), with highlighted snippets (escaped text, our <mark>).
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
    """The grouped results fragment for ``q`` and the API's filters (status, inbox, channel,
    assignee, since, until, limit). A bad filter renders the error in the fragment (422)."""
    context: dict = {"q": request.GET.get("q", "").strip()}
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
    return render(request, "search/partials/results.html", context, status=status)
