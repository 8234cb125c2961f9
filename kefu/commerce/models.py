from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Platform(models.TextChoices):
    SHOPIFY = "shopify", "Shopify"
    WOOCOMMERCE = "woocommerce", "WooCommerce"
    AMAZON = "amazon", "Amazon"
    EBAY = "ebay", "eBay"
    CUSTOM = "custom", _("Custom")


class Store(models.Model):
    """A shop or brand. Its country is the default region for phone numbers its customers give."""

    name = models.CharField(max_length=150)
    platform = models.CharField(max_length=16, choices=Platform.choices, default=Platform.CUSTOM)
    currency = models.CharField(max_length=3, default="USD")
    locale = models.CharField(max_length=16, default="en")
    country = models.CharField(max_length=2, default="US")
    timezone = models.CharField(max_length=64, default="UTC")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name
