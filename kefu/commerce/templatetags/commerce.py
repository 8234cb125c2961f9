from __future__ import annotations

from django import template

from kefu.commerce import money as money_module

register = template.Library()


@register.filter
def money(minor: int | None, currency: str) -> str:
    """``{{ order.total|money:order.currency }}`` → "115.00 USD" (exact, per ISO 4217)."""
    if minor is None:
        return ""
    return money_module.format_money(int(minor), currency)


@register.filter
def major(minor: int | None, currency: str) -> str:
    """The plain major-unit amount ("30.00") for form fields."""
    return "" if minor is None else str(money_module.to_major(int(minor), currency))
