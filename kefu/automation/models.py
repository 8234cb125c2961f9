"""Automation: SLA policies and clocks, business hours, rules, routing state, reply templates.

Configuration rows (policies, hours, rules, templates, routing) are written only through
``kefu.automation.actions``, which also bumps the configuration version so every process drops
its compiled copies (see ``kefu.automation.config``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


def _default_pause_statuses() -> list[str]:
    return ["pending", "on_hold"]


class Weekday(models.IntegerChoices):
    MONDAY = 0, _("Monday")
    TUESDAY = 1, _("Tuesday")
    WEDNESDAY = 2, _("Wednesday")
    THURSDAY = 3, _("Thursday")
    FRIDAY = 4, _("Friday")
    SATURDAY = 5, _("Saturday")
    SUNDAY = 6, _("Sunday")


class BusinessHours(models.Model):
    """When a store's team works, in the store's time zone.

    ``weekly`` maps weekday numbers ("0" Monday .. "6" Sunday) to lists of ["HH:MM", "HH:MM"]
    intervals; a missing or empty day is closed; "24:00" ends a day. The row with no store is the
    default for stores without their own. Public holidays come from the ``holidays`` package for
    ``holiday_country`` (the store's country when blank); :class:`Holiday` rows add closures and
    special hours.
    """

    store = models.OneToOneField(
        "commerce.Store",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="business_hours",
    )
    name = models.CharField(max_length=150)
    timezone = models.CharField(
        max_length=64, blank=True, help_text=_("Blank: the store's time zone")
    )
    weekly = models.JSONField(default=dict)
    public_holidays = models.BooleanField(default=True)
    holiday_country = models.CharField(max_length=2, blank=True)
    holiday_subdivision = models.CharField(max_length=10, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "business hours"
        constraints = [
            models.UniqueConstraint(
                fields=["store"], condition=Q(store__isnull=True), name="hours_one_default"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Holiday(models.Model):
    """A closure or special opening: Black Friday, 11.11, a company day off.

    ``hours`` empty means closed all day; otherwise the intervals replace the weekly ones. With
    ``annual`` the month and day repeat every year.
    """

    business_hours = models.ForeignKey(
        BusinessHours, on_delete=models.CASCADE, related_name="holidays"
    )
    date = models.DateField()
    name = models.CharField(max_length=150)
    annual = models.BooleanField(default=False)
    hours = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.name} ({self.date})"


class Clock(models.TextChoices):
    BUSINESS = "business", _("Business hours")
    CALENDAR = "calendar", _("24/7")


class SlaTarget(models.TextChoices):
    FIRST_RESPONSE = "first_response", _("First response")
    NEXT_RESPONSE = "next_response", _("Next response")
    RESOLUTION = "resolution", _("Resolution")


class SlaPolicy(models.Model):
    """Targets for a kind of conversation; the first active policy (by position) that matches wins.

    Empty condition lists match everything. ``segments`` are customer tags (vip, wholesale...).
    """

    name = models.CharField(max_length=150)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    position = models.IntegerField(default=100)
    store_ids = models.JSONField(default=list, blank=True)
    inbox_kinds = models.JSONField(default=list, blank=True)
    inbox_ids = models.JSONField(default=list, blank=True)
    priorities = models.JSONField(default=list, blank=True)
    segments = models.JSONField(default=list, blank=True)
    intents = models.JSONField(default=list, blank=True)
    first_response_seconds = models.PositiveIntegerField(null=True, blank=True)
    next_response_seconds = models.PositiveIntegerField(null=True, blank=True)
    resolution_seconds = models.PositiveIntegerField(null=True, blank=True)
    clock = models.CharField(max_length=16, choices=Clock.choices, default=Clock.BUSINESS)
    pause_statuses = models.JSONField(default=_default_pause_statuses, blank=True)
    # Marketplaces (Amazon) do not count an automatic acknowledgement as a response.
    count_auto_replies = models.BooleanField(default=True)
    # A warning fires when this share of a target's time has passed (0: no warning).
    warn_percent = models.PositiveSmallIntegerField(default=80)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]
        verbose_name = "SLA policy"
        verbose_name_plural = "SLA policies"

    def __str__(self) -> str:
        return self.name


class SlaClock(models.Model):
    """The SLA state of one conversation, and automation's record that it has seen it.

    ``targets`` holds, per running target, {"due": iso, "remaining": seconds|null, "seconds": n}:
    ``remaining`` is set while the clock is paused (business seconds left at the pause).
    ``next_check_at`` is the earliest warning or breach still to fire; the tick claims rows by
    moving it forward in one conditional UPDATE, so several workers never fire twice.
    """

    conversation = models.OneToOneField(
        "conversations.Conversation",
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="sla_clock",
    )
    # No database constraint: a process may still write a policy id for a second after another
    # deleted the policy (compiled configuration is refreshed within a second); deletion still
    # nulls the references through Django.
    policy = models.ForeignKey(
        SlaPolicy,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    intake_done = models.BooleanField(default=False)
    status = models.CharField(max_length=16, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    first_responded_at = models.DateTimeField(null=True, blank=True)
    last_responded_at = models.DateTimeField(null=True, blank=True)
    awaiting_since = models.DateTimeField(null=True, blank=True)
    targets = models.JSONField(default=dict, blank=True)
    fired = models.JSONField(default=list, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True)
    # Compliance, for reports: one flag per target and the count of missed next responses.
    first_response_breached = models.BooleanField(null=True, blank=True)
    next_response_breaches = models.PositiveIntegerField(default=0)
    next_response_met = models.PositiveIntegerField(default=0)
    resolution_breached = models.BooleanField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["next_check_at"],
                name="slaclock_next_check",
                condition=Q(next_check_at__isnull=False),
            )
        ]


class SlaEventKind(models.TextChoices):
    WARNING = "warning", _("Warning")
    BREACH = "breach", _("Breach")
    FULFILLED = "fulfilled", _("Fulfilled")


class SlaEvent(models.Model):
    """One warning, breach or fulfilment of a target; unique per due time, so each fires once."""

    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="sla_events"
    )
    # No database constraint: a process may still write a policy id for a second after another
    # deleted the policy (compiled configuration is refreshed within a second); deletion still
    # nulls the references through Django.
    policy = models.ForeignKey(
        SlaPolicy,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    target = models.CharField(max_length=16, choices=SlaTarget.choices)
    kind = models.CharField(max_length=16, choices=SlaEventKind.choices)
    due_at = models.DateTimeField()
    at = models.DateTimeField()
    met = models.BooleanField(null=True, blank=True)
    # Business (or calendar) seconds from the start of the target to ``at``.
    elapsed_seconds = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "target", "kind", "due_at"], name="sla_event_once"
            )
        ]
        indexes = [models.Index(fields=["kind", "at"], name="sla_event_report")]


class Trigger(models.TextChoices):
    MESSAGE_RECEIVED = "message_received", _("Message received")
    CONVERSATION_CREATED = "conversation_created", _("Conversation created")
    CONVERSATION_UPDATED = "conversation_updated", _("Conversation updated")
    SLA_WARNING = "sla_warning", _("SLA warning")
    SLA_BREACHED = "sla_breached", _("SLA breached")
    TIME_ELAPSED = "time_elapsed", _("Time since an event")
    ORDER_EVENT = "order_event", _("Order event")
    SHIPMENT_EVENT = "shipment_event", _("Shipment event")


class Rule(models.Model):
    """When ``trigger`` happens and ``conditions`` hold, run ``actions`` (in order).

    ``conditions``: {"all": [cond...], "any": [cond...]}, each cond {"field", "op", "value"}.
    ``actions``: [{"type": ..., ...params}]. ``options`` holds trigger parameters (for
    time_elapsed: {"since": field, "hours": n}). See docs/automation.md for the vocabulary.
    """

    name = models.CharField(max_length=150)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    position = models.IntegerField(default=100)
    trigger = models.CharField(max_length=32, choices=Trigger.choices)
    inbox_ids = models.JSONField(default=list, blank=True)
    conditions = models.JSONField(default=dict, blank=True)
    actions = models.JSONField(default=list)
    options = models.JSONField(default=dict, blank=True)
    stop_processing = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name


class RuleExecution(models.Model):
    """The log of a rule acting on a conversation. ``key`` makes a trigger act once (message id,
    SLA due time, time-rule anchor); blank for triggers that may repeat."""

    rule = models.ForeignKey(Rule, null=True, on_delete=models.SET_NULL, related_name="executions")
    rule_name = models.CharField(max_length=150)
    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="rule_executions"
    )
    trigger = models.CharField(max_length=32, choices=Trigger.choices)
    key = models.CharField(max_length=120, blank=True)
    depth = models.PositiveSmallIntegerField(default=0)
    results = models.JSONField(default=list, blank=True)
    ok = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "conversation", "key"],
                condition=~Q(key=""),
                name="rule_execution_once",
            )
        ]
        indexes = [models.Index(fields=["conversation", "-created_at"], name="rule_exec_conv")]


class Template(models.Model):
    """A reply macro: per-language bodies rendered in a sandbox, plus optional side effects.

    ``bodies`` maps language codes ("en", "zh", "ar") to template text; ``set_tags``,
    ``set_status`` and ``assign_team``/``assign_agent`` apply when the template is used.
    """

    name = models.CharField(max_length=150)
    shortcut = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    bodies = models.JSONField(default=dict)
    default_language = models.CharField(max_length=16, default="en")
    inbox_ids = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    set_tags = models.JSONField(default=list, blank=True)
    set_status = models.CharField(max_length=16, blank=True)
    assign_agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    assign_team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    usage_count = models.PositiveIntegerField(default=0)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RoutingMode(models.TextChoices):
    OFF = "off", _("Off (manual)")
    ROUND_ROBIN = "round_robin", _("Round robin")
    LOAD_BALANCED = "load_balanced", _("Load balanced")


class InboxRouting(models.Model):
    """How new conversations of an inbox find an agent. Its row lock serializes routing of the
    inbox, so two workers never assign the same conversation or overrun the rotation."""

    inbox = models.OneToOneField(
        "conversations.Inbox", primary_key=True, on_delete=models.CASCADE, related_name="routing"
    )
    mode = models.CharField(max_length=16, choices=RoutingMode.choices, default=RoutingMode.OFF)
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    use_skills = models.BooleanField(default=True)
    skills_fallback = models.BooleanField(
        default=True, help_text=_("Route to anyone when no agent has the skills")
    )
    away_grace_minutes = models.PositiveIntegerField(default=10)
    last_agent_id = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)


class AgentRoutingState(models.Model):
    """Routing's memory of an agent: since when they are away, when they last got work."""

    agent = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="routing_state",
    )
    away_since = models.DateTimeField(null=True, blank=True)
    last_assigned_at = models.DateTimeField(null=True, blank=True)
    assigned_total = models.PositiveIntegerField(default=0)


class AutomationState(models.Model):
    """Small named counters: "config" (version of the configuration), "intake" (the message
    cursor with its lease and gaps), "tick" (the last SLA tick)."""

    name = models.CharField(max_length=32, primary_key=True)
    number = models.BigIntegerField(default=0)
    data = models.JSONField(default=dict, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    dirty = models.BooleanField(default=False)
    at = models.DateTimeField(null=True, blank=True)
