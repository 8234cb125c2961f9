"""HTML from customers is sanitized once, on the way in, with nh3 (Ammonia).

The result is still untrusted for the workspace: it is shown inside a sandboxed iframe. This pass
removes scripts, event handlers, ``javascript:`` URLs, forms and styles that could break out.
"""

from __future__ import annotations

import nh3

_ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del",
    "div", "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins",
    "li", "ol", "p", "pre", "q", "s", "small", "span", "strong", "sub", "sup", "table", "tbody",
    "td", "tfoot", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {
    "*": {"title", "dir", "lang", "align"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "font": {"color"},
}
_URL_SCHEMES = {"http", "https", "mailto", "cid", "tel"}


def sanitize_html(html: str) -> str:
    """Return ``html`` with only harmless markup left (links get rel=noopener noreferrer)."""
    if not html:
        return ""
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def html_to_text(html: str) -> str:
    """A plain-text rendering of ``html`` for previews and search (tags dropped, spaces folded)."""
    text = nh3.clean(html or "", tags=set(), attributes={})
    return " ".join(text.split())
