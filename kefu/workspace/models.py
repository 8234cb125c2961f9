from __future__ import annotations

from django.conf import settings
from django.db import models


class SavedFilter(models.Model):
    """An agent's named inbox view: the list's query string (view, inbox, status, sort)."""

    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_filters"
    )
    name = models.CharField(max_length=80)
    params = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["agent", "name"], name="saved_filter_unique_name")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
