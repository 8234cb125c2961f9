from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class InboxKind(models.TextChoices):
    EMAIL = "email", _("Email")
    CHAT = "chat", _("Chat")
    WHATSAPP = "whatsapp", "WhatsApp"
    TELEGRAM = "telegram", "Telegram"
    MESSENGER = "messenger", "Messenger"
    MARKETPLACE = "marketplace", _("Marketplace")
    API = "api", "API"
    PORTAL = "portal", _("Portal")
    PHONE = "phone", _("Phone")


class Inbox(models.Model):
    """One door messages come in by, bound to a connector kind and a store."""

    name = models.CharField(max_length=150)
    kind = models.CharField(max_length=16, choices=InboxKind.choices)
    store = models.ForeignKey(
        "commerce.Store", null=True, blank=True, on_delete=models.PROTECT, related_name="inboxes"
    )
    is_active = models.BooleanField(default=True)
    # Connector settings (addresses, ids); secrets live in encrypted fields of the connector.
    config = models.JSONField(default=dict, blank=True)
    # Per-inbox override of KEFU_THREAD_WINDOW_HOURS.
    thread_window_hours = models.PositiveIntegerField(null=True, blank=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="InboxMembership", related_name="inboxes", blank=True
    )
    teams = models.ManyToManyField("accounts.Team", related_name="inboxes", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "inboxes"

    def __str__(self) -> str:
        return self.name


class InboxMembership(models.Model):
    inbox = models.ForeignKey(Inbox, on_delete=models.CASCADE)
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["inbox", "agent"], name="inbox_membership_unique")
        ]


class Status(models.TextChoices):
    NEW = "new", _("New")
    OPEN = "open", _("Open")
    PENDING = "pending", _("Pending")
    ON_HOLD = "on_hold", _("On hold")
    SOLVED = "solved", _("Solved")
    CLOSED = "closed", _("Closed")


ACTIVE_STATUSES = (Status.NEW, Status.OPEN, Status.PENDING, Status.ON_HOLD)
# A conversation an agent may still have to work on (the workspace's default lists).
_LIVE = Q(status__in=ACTIVE_STATUSES, merged_into__isnull=True)


class Priority(models.TextChoices):
    LOW = "low", _("Low")
    NORMAL = "normal", _("Normal")
    HIGH = "high", _("High")
    URGENT = "urgent", _("Urgent")


class Tag(models.Model):
    name = models.CharField(max_length=64, unique=True)

    def __str__(self) -> str:
        return self.name


class Conversation(models.Model):
    """A customer request, shown to people as "#<id>"."""

    # Foreign keys whose lookups a composite index below already serves (inbox: conv_inbox,
    # customer: conv_thread, assignee: conv_mine) or that are mostly empty (team, merged_into:
    # partial indexes) get no index of their own. Every inbound message rewrites its
    # conversation's row and each index gets a new entry (the summary columns are indexed, so
    # the update is never HOT): 17 indexes were a third of the batch path's database time.
    inbox = models.ForeignKey(
        Inbox, on_delete=models.PROTECT, related_name="conversations", db_index=False
    )
    store = models.ForeignKey(
        "commerce.Store", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="conversations", db_index=False
    )
    subject = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    priority = models.CharField(max_length=16, choices=Priority.choices, default=Priority.NORMAL)
    intent = models.CharField(max_length=64, blank=True)
    language = models.CharField(max_length=16, blank=True)
    sentiment = models.FloatField(null=True, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_conversations",
        db_index=False,
    )
    team = models.ForeignKey(
        "accounts.Team",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    tags = models.ManyToManyField(Tag, related_name="conversations", blank=True)
    # An explicit thread reference from the channel (chat session, marketplace thread id).
    thread_key = models.CharField(max_length=200, blank=True)
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="merged_from",
        db_index=False,
    )

    # Denormalized for the inbox list; kept current by conversations.actions only.
    last_message_at = models.DateTimeField()
    last_message_preview = models.CharField(max_length=200, blank=True)
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    waiting_since = models.DateTimeField(null=True, blank=True)
    unread_count = models.PositiveIntegerField(default=0)
    message_count = models.PositiveIntegerField(default=0)

    # SLA clocks (automation issue fills these).
    first_response_due_at = models.DateTimeField(null=True, blank=True)
    next_response_due_at = models.DateTimeField(null=True, blank=True)
    resolution_due_at = models.DateTimeField(null=True, blank=True)
    first_response_at = models.DateTimeField(null=True, blank=True)
    solved_at = models.DateTimeField(null=True, blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # Inbox list: per inbox and status, newest activity first; keyset on (time, id).
            models.Index(fields=["inbox", "status", "-last_message_at", "-id"], name="conv_inbox"),
            models.Index(
                fields=["assignee", "status", "-last_message_at", "-id"], name="conv_mine"
            ),
            models.Index(fields=["status", "-last_message_at", "-id"], name="conv_status"),
            models.Index(fields=["-updated_at", "-id"], name="conv_updated"),
            models.Index(fields=["customer", "inbox", "-last_message_at"], name="conv_thread"),
            models.Index(
                fields=["inbox", "thread_key"], name="conv_thread_key", condition=~Q(thread_key="")
            ),
            # The workspace's lists show live conversations (ACTIVE_STATUSES, not merged), newest
            # or longest-waiting first. Partial indexes in that order let a page read 51 index
            # entries instead of sorting every active row of a view (bench/inbox.py: 1,000,000
            # conversations).
            models.Index(
                fields=["-last_message_at", "-id"], name="conv_live_recent", condition=_LIVE
            ),
            models.Index(
                fields=["inbox", "-last_message_at", "-id"],
                name="conv_live_inbox",
                condition=_LIVE,
            ),
            models.Index(
                fields=["assignee", "-last_message_at", "-id"],
                name="conv_live_assignee",
                condition=_LIVE,
            ),
            models.Index(fields=["waiting_since", "id"], name="conv_live_waiting", condition=_LIVE),
            models.Index(fields=["team"], name="conv_team", condition=Q(team__isnull=False)),
            models.Index(
                fields=["merged_into"],
                name="conv_merged_into",
                condition=Q(merged_into__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk}"

    @property
    def number(self) -> str:
        return f"#{self.pk}"


class Direction(models.TextChoices):
    INBOUND = "inbound", _("Inbound")
    OUTBOUND = "outbound", _("Outbound")
    NOTE = "note", _("Internal note")


class AuthorKind(models.TextChoices):
    CUSTOMER = "customer", _("Customer")
    AGENT = "agent", _("Agent")
    BOT = "bot", _("Bot")
    SYSTEM = "system", _("System")


class DeliveryStatus(models.TextChoices):
    RECEIVED = "received", _("Received")
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    DELIVERED = "delivered", _("Delivered")
    READ = "read", _("Read")
    FAILED = "failed", _("Failed")


class Message(models.Model):
    # Indexed by msg_timeline (conversation first); author_agent only where set (inbound
    # messages have none): two fewer index entries per message stored.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    # Kept on the message so idempotency holds even after the conversation is merged.
    inbox = models.ForeignKey(Inbox, on_delete=models.PROTECT, related_name="+")
    direction = models.CharField(max_length=16, choices=Direction.choices)
    author_kind = models.CharField(max_length=16, choices=AuthorKind.choices)
    author_agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    subject = models.CharField(max_length=300, blank=True)
    text = models.TextField(blank=True)
    html = models.TextField(blank=True, help_text="Sanitized on the way in")
    language = models.CharField(max_length=16, blank=True)
    # The provider's id for this message: the idempotency key, unique per inbox.
    external_id = models.CharField(max_length=255, null=True, blank=True)
    delivery_status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.RECEIVED
    )
    delivery_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(help_text="When the author sent it (provider time for inbound)")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["inbox", "external_id"],
                name="message_inbox_external_id_unique",
                condition=Q(external_id__isnull=False),
            )
        ]
        indexes = [
            models.Index(fields=["conversation", "sent_at", "id"], name="msg_timeline"),
            models.Index(
                fields=["author_agent"], name="msg_author", condition=Q(author_agent__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.direction} message {self.pk}"


def attachment_path(instance: Attachment, filename: str) -> str:
    return f"attachments/{instance.message.conversation_id}/{instance.message_id}/{filename}"


class Attachment(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=attachment_path, max_length=500, blank=True)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=127, default="application/octet-stream")
    size = models.PositiveBigIntegerField(default=0)
    # Too large or blocked: the attachment is recorded with the reason and never dropped silently.
    refused_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class EventKind(models.TextChoices):
    CREATED = "created", _("Created")
    MESSAGE_ADDED = "message_added", _("Message added")
    NOTE_ADDED = "note_added", _("Note added")
    REPLIED = "replied", _("Replied")
    ASSIGNED = "assigned", _("Assigned")
    STATUS_CHANGED = "status_changed", _("Status changed")
    PRIORITY_CHANGED = "priority_changed", _("Priority changed")
    TAGGED = "tagged", _("Tagged")
    UNTAGGED = "untagged", _("Untagged")
    REOPENED = "reopened", _("Reopened")
    MERGED = "merged", _("Merged")
    UNMERGED = "unmerged", _("Unmerged")
    CUSTOMER_CHANGED = "customer_changed", _("Customer changed")
    ENRICHED = "enriched", _("Enriched")
    SLA_BREACHED = "sla_breached", _("SLA breached")
    ORDER_ACTION = "order_action", _("Order action")


class ConversationEvent(models.Model):
    """Append-only timeline: the UI, the audit trail, analytics and rules all read it."""

    # Indexed by event_timeline (conversation first); actor and message only where set.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    kind = models.CharField(max_length=32, choices=EventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["conversation", "created_at", "id"], name="event_timeline"),
            models.Index(fields=["actor"], name="event_actor", condition=Q(actor__isnull=False)),
            models.Index(
                fields=["message"], name="event_message", condition=Q(message__isnull=False)
            ),
        ]


class ConversationMerge(models.Model):
    """One merge of ``source`` into ``target``, with the messages moved, so it can be undone."""

    source = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    target = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    message_ids = models.JSONField(default=list)
    source_status = models.CharField(max_length=16, choices=Status.choices)
    # The source's unread count moves to the target with its messages and comes back on undo.
    source_unread_count = models.PositiveIntegerField(default=0)
    merged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)
