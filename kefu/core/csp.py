"""Content-Security-Policy and the security headers Django's SecurityMiddleware leaves out.

Every HTML response gets a strict policy: scripts and styles only from kefu's own static files
(no inline ``<script>``, no ``style=""`` attributes, no ``eval``), images from kefu or ``data:``,
frames only from kefu, websockets only to this host, no framing of kefu by anyone, forms posting
only to kefu. See docs/security.md for the why of each directive.

Email HTML is shown in a sandboxed ``<iframe srcdoc>``. A srcdoc frame is not fetched, so
``frame-src`` does not govern it; it *inherits* this page's policy instead, which blocks remote
images (``img-src``) and inline styles inside the email too. A view that serves an email body
from its own URL (for "show remote images") sets its own policy with :func:`email_frame_policy`;
this middleware leaves a response that already carries a policy untouched.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse

CSP_HEADER = "Content-Security-Policy"

# The directives that do not depend on the request. connect-src is added per request: 'self'
# covers http(s) to this origin; websockets are listed explicitly for this host only (older
# browsers do not let 'self' match ws:/wss:).
BASE_DIRECTIVES: tuple[tuple[str, str], ...] = (
    ("default-src", "'self'"),
    ("script-src", "'self'"),
    ("style-src", "'self'"),
    ("img-src", "'self' data:"),
    ("font-src", "'self'"),
    ("frame-src", "'self'"),
    ("object-src", "'none'"),
    ("frame-ancestors", "'none'"),
    ("form-action", "'self'"),
    ("base-uri", "'none'"),
)

# Powerful browser features kefu never uses; denied so an injected frame cannot ask for them.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "camera",
        "microphone",
        "geolocation",
        "payment",
        "usb",
        "serial",
        "midi",
        "display-capture",
        "browsing-topics",
    )
)


def content_security_policy(request: HttpRequest) -> str:
    """The policy for a page served to ``request``."""
    directives = [*BASE_DIRECTIVES, ("connect-src", _connect_sources(request))]
    return "; ".join(f"{name} {value}" for name, value in directives)


def _connect_sources(request: HttpRequest) -> str:
    try:
        host = request.get_host()
    except DisallowedHost:
        return "'self'"
    scheme = "wss" if request.is_secure() else "ws"
    return f"'self' {scheme}://{host}"


def email_frame_policy(*, allow_remote_images: bool) -> str:
    """The policy for a view serving one email's sanitized HTML into a sandboxed iframe.

    Nothing runs (``sandbox`` without allow-scripts, no script-src), nothing is fetched except
    images, and those only when the agent chose to load them; only kefu may frame it.
    """
    images = "data: cid: https: http:" if allow_remote_images else "data:"
    return (
        f"default-src 'none'; img-src {images}; style-src 'unsafe-inline'; "
        "sandbox allow-popups allow-popups-to-escape-sandbox; "
        "frame-ancestors 'self'; form-action 'none'; base-uri 'none'"
    )


class SecurityHeadersMiddleware:
    """Adds the CSP and a few headers to every response (HTML pages, fragments, errors; JSON and
    files too: a file opened directly, an SVG say, must not run scripts either).

    Placed right after ``SecurityMiddleware`` so it sees the final response of every view,
    error pages included. A view with other needs (an email frame, the chat widget embedded
    on a shop's site) sets its own ``Content-Security-Policy``; it is left as it is.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if CSP_HEADER not in response:
            response[CSP_HEADER] = content_security_policy(request)
        response.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        response.setdefault("X-Permitted-Cross-Domain-Policies", "none")
        return response
