"""Mounts every app's REST router under /api/v1 and maps domain errors to JSON answers."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, ValidationError

from kefu.accounts.auth import SessionOrTokenAuth
from kefu.automation.api import router as automation_router
from kefu.commerce.api import router as commerce_router
from kefu.conversations.api import router as conversations_router
from kefu.core.errors import KefuError
from kefu.customers.api import router as customers_router
from kefu.search.api import router as search_router

logger = logging.getLogger(__name__)

api = NinjaAPI(
    title="kefu API",
    version="1",
    urls_namespace="api-v1",
    auth=SessionOrTokenAuth(),
    docs_url="/docs",
)
api.add_router("", conversations_router)
api.add_router("", customers_router)
api.add_router("", automation_router)
api.add_router("", search_router)
api.add_router("", commerce_router)


@api.exception_handler(KefuError)
def _domain_error(request: HttpRequest, exc: KefuError) -> HttpResponse:
    body: dict = {"detail": exc.message}
    if exc.field:
        body["field"] = exc.field
    return api.create_response(request, body, status=exc.status_code)


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = [
        {"loc": [str(p) for p in e.get("loc", [])], "msg": e.get("msg", ""), "type": e.get("type")}
        for e in exc.errors
    ]
    summary = "; ".join(f"{'.'.join(e['loc'][1:]) or 'body'}: {e['msg']}" for e in errors[:5])
    return api.create_response(
        request, {"detail": f"invalid request: {summary}", "errors": errors}, status=422
    )


@api.exception_handler(AuthenticationError)
def _auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return api.create_response(
        request, {"detail": "missing or invalid token (Authorization: Bearer <token>)"}, status=401
    )


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return api.create_response(request, {"detail": "not found"}, status=404)


@api.exception_handler(RequestDataTooBig)
def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return api.create_response(
        request,
        {"detail": f"request body larger than {limit} bytes (KEFU_MAX_REQUEST_BYTES)"},
        status=413,
    )


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    """A bug: logged with its traceback; the caller still gets JSON, without internals."""
    logger.exception("API error on %s %s", request.method, request.path, exc_info=exc)
    return api.create_response(
        request, {"detail": "internal error; it has been logged, please try again"}, status=500
    )
