from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class IdentityKind(models.TextChoices):
    EMAIL = "email", _("Email")
    PHONE = "phone", _("Phone")
    WHATSAPP = "whatsapp", "WhatsApp"
    TELEGRAM = "telegram", "Telegram"
    CHAT_VISITOR = "chat_visitor", _("Chat visitor")
    MARKETPLACE = "marketplace", _("Marketplace buyer")
    EXTERNAL = "external", _("External id")


class Customer(models.Model):
    name = models.CharField(max_length=200, blank=True)
    # Primary contact points, denormalized from identities for display.
    email = models.CharField(max_length=254, blank=True)
    phone = models.CharField(max_length=32, blank=True)
    language = models.CharField(max_length=16, blank=True)
    location = models.CharField(max_length=200, blank=True)
    notes = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="merged_from",
        db_index=False,  # a partial index: only merged-away customers have one
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["merged_into"],
                name="customer_merged_into",
                condition=models.Q(merged_into__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return self.name or self.email or self.phone or f"Customer {self.pk}"


class Identity(models.Model):
    """One way to reach a customer. ``value`` is normalized (see customers.identities)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=16, choices=IdentityKind.choices)
    value = models.CharField(max_length=254)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "value"], name="identity_kind_value_unique")
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class CustomerMerge(models.Model):
    """A record of one customer merge, with what moved, so the merge can be undone."""

    source = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    target = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    identity_ids = models.JSONField(default=list)
    conversation_ids = models.JSONField(default=list)
    merged_by = models.ForeignKey(
        "accounts.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)
