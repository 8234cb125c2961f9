from urllib.parse import urlencode

from django import template

register = template.Library()


@register.filter
def urlencode_params(params: dict) -> str:
    """A saved view's parameters as a query string (escaped by the template afterwards)."""
    return urlencode({str(k): str(v) for k, v in (params or {}).items()})
