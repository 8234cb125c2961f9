from __future__ import annotations

import hashlib
from datetime import datetime

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    ADMIN = "admin", _("Admin")
    LEAD = "lead", _("Team lead")
    AGENT = "agent", _("Agent")


class Agent(AbstractUser):
    """A person who signs in to kefu: an agent, a team lead or an admin."""

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.AGENT)
    display_name = models.CharField(max_length=150, blank=True)
    language = models.CharField(max_length=16, default="en")
    timezone = models.CharField(max_length=64, default="UTC")
    # Routing (automation issue): languages spoken, categories handled, open-conversation cap.
    skills = models.JSONField(default=dict, blank=True)
    capacity = models.PositiveIntegerField(default=20)
    is_available = models.BooleanField(default=True)

    @property
    def sees_every_inbox(self) -> bool:
        return self.is_superuser or self.role == Role.ADMIN

    @property
    def name(self) -> str:
        return self.display_name or self.get_full_name() or self.username

    def __str__(self) -> str:
        return self.name


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(Agent, related_name="teams", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


def hash_token(raw: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is safe (no dictionary to attack) and
    # lets a request find its token by an indexed lookup.
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token for the REST API. Only its SHA-256 is stored; the secret is shown once."""

    user = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise a token")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class AuditLog(models.Model):
    """Who did what to which object, for actions outside a conversation's own timeline."""

    actor = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["object_type", "object_id"])]


class Invitation(models.Model):
    """An admin's invitation to join kefu: a single-use link that expires.

    Only the SHA-256 of the link's secret is stored (like API tokens); the link itself is
    shown once, to the admin who created it. Accepting it creates the agent with the role,
    teams and inboxes chosen here.
    """

    email = models.EmailField(blank=True)
    display_name = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.AGENT)
    language = models.CharField(max_length=16, default="en")
    teams = models.ManyToManyField(Team, related_name="+", blank=True)
    inboxes = models.ManyToManyField("conversations.Inbox", related_name="+", blank=True)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        Agent, null=True, on_delete=models.SET_NULL, related_name="invitations_sent"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.email or self.display_name or f"invitation {self.pk}"

    def is_pending(self, now: datetime) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > now
