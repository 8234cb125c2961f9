from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from kefu.core.secrets import EncryptedTextField


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
    # Platform connection (commerce issue). Secrets are encrypted at rest (kefu.core.secrets).
    platform_domain = models.CharField(
        max_length=255, blank=True, help_text="e.g. example.myshopify.com"
    )
    api_url = models.URLField(
        max_length=500, blank=True, help_text="Override of the platform API endpoint"
    )
    access_token = EncryptedTextField(blank=True)
    webhook_secret = EncryptedTextField(blank=True)
    synced_at = models.DateTimeField(
        null=True, blank=True, help_text="Orders changed up to here are reconciled"
    )

    def __str__(self) -> str:
        return self.name


# --- orders and what happens to them -------------------------------------------------------------
# Snapshots synced from the store platform, plus what kefu did to them. Amounts are integers of
# the order currency's minor unit (kefu.commerce.money); nothing here is ever a float.


class PaymentStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    AUTHORIZED = "authorized", _("Authorized")
    PAID = "paid", _("Paid")
    PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
    REFUNDED = "refunded", _("Refunded")
    VOIDED = "voided", _("Voided")
    FAILED = "failed", _("Payment failed")


class FulfillmentStatus(models.TextChoices):
    UNFULFILLED = "unfulfilled", _("Unfulfilled")
    PARTIAL = "partial", _("Partially fulfilled")
    FULFILLED = "fulfilled", _("Fulfilled")
    RESTOCKED = "restocked", _("Restocked")


class OrderStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CANCELLED = "cancelled", _("Cancelled")
    CLOSED = "closed", _("Closed")


class Order(models.Model):
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="orders")
    customer = models.ForeignKey(
        "customers.Customer",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="orders",
    )
    number = models.CharField(max_length=64, help_text="As shown to the customer (#1001)")
    external_id = models.CharField(max_length=128, help_text="The platform's id")
    email = models.CharField(max_length=254, blank=True)
    phone = models.CharField(max_length=32, blank=True)
    currency = models.CharField(max_length=3)
    subtotal = models.BigIntegerField(default=0)
    shipping = models.BigIntegerField(default=0)
    tax = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    refunded = models.BigIntegerField(default=0)
    payment_status = models.CharField(
        max_length=24, choices=PaymentStatus.choices, default=PaymentStatus.PENDING
    )
    fulfillment_status = models.CharField(
        max_length=24, choices=FulfillmentStatus.choices, default=FulfillmentStatus.UNFULFILLED
    )
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.OPEN)
    placed_at = models.DateTimeField()
    platform_updated_at = models.DateTimeField(
        null=True, blank=True, help_text="When the platform last changed the snapshot kefu holds"
    )
    shipping_address = models.JSONField(default=dict, blank=True)
    raw = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["store", "external_id"], name="order_external_id"),
            models.CheckConstraint(
                condition=models.Q(refunded__gte=0) & models.Q(refunded__lte=models.F("total")),
                name="order_refund_within_total",
            ),
        ]
        indexes = [
            models.Index(fields=["store", "number"], name="order_number"),
            models.Index(fields=["customer", "-placed_at"], name="order_customer_recent"),
        ]

    def __str__(self) -> str:
        return self.number


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    external_id = models.CharField(max_length=128, blank=True)
    sku = models.CharField(max_length=128, blank=True)
    title = models.CharField(max_length=300)
    quantity = models.PositiveIntegerField(default=1)
    unit_price = models.BigIntegerField(default=0)
    refunded_quantity = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(refunded_quantity__lte=models.F("quantity")),
                name="line_refund_within_quantity",
            ),
        ]

    @property
    def line_total(self) -> int:
        return self.unit_price * self.quantity

    @property
    def refundable_quantity(self) -> int:
        return self.quantity - self.refunded_quantity


class ShipmentStatus(models.TextChoices):
    LABEL_CREATED = "label_created", _("Label created")
    IN_TRANSIT = "in_transit", _("In transit")
    OUT_FOR_DELIVERY = "out_for_delivery", _("Out for delivery")
    DELIVERED = "delivered", _("Delivered")
    EXCEPTION = "exception", _("Exception")
    RETURNED = "returned", _("Returned")


class Shipment(models.Model):
    """A parcel. ``events`` is a list of {at, status, location, description}, oldest first."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="shipments")
    external_id = models.CharField(max_length=128, blank=True)
    carrier = models.CharField(max_length=32, blank=True)
    tracking_number = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.CharField(
        max_length=24, choices=ShipmentStatus.choices, default=ShipmentStatus.LABEL_CREATED
    )
    events = models.JSONField(default=list, blank=True)
    moved_at = models.DateTimeField(
        null=True, blank=True, help_text="Last change of status or new tracking event"
    )
    stalled_at = models.DateTimeField(
        null=True, blank=True, help_text="When kefu flagged it as not moving"
    )
    # The tracking provider's view of the parcel (kefu.commerce.tracking).
    tracker_id = models.CharField(max_length=128, blank=True, help_text="The provider's id")
    next_poll_at = models.DateTimeField(null=True, blank=True)
    poll_failures = models.PositiveSmallIntegerField(default=0)
    tracker_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)


class RefundStatus(models.TextChoices):
    PENDING_APPROVAL = "pending_approval", _("Waiting for approval")
    SUCCEEDED = "succeeded", _("Refunded")
    FAILED = "failed", _("Failed")
    REJECTED = "rejected", _("Rejected")


class Refund(models.Model):
    """A refund: ``lines`` is a list of {line_id, quantity, amount}; ``amount`` their total."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="refunds")
    amount = models.BigIntegerField()
    lines = models.JSONField(default=list, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=24, choices=RefundStatus.choices)
    external_id = models.CharField(max_length=128, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    conversation = models.ForeignKey(
        "conversations.Conversation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="refund_positive"),
        ]


class ReturnStatus(models.TextChoices):
    REQUESTED = "requested", _("Requested")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    LABEL_SENT = "label_sent", _("Label sent")
    RECEIVED = "received", _("Received")
    REFUNDED = "refunded", _("Refunded")
    EXCHANGED = "exchanged", _("Exchanged")
    CLOSED = "closed", _("Closed")


# The return (RMA) state machine: each status and where it may go next.
RETURN_TRANSITIONS: dict[str, frozenset[str]] = {
    ReturnStatus.REQUESTED: frozenset({ReturnStatus.APPROVED, ReturnStatus.REJECTED}),
    ReturnStatus.APPROVED: frozenset({ReturnStatus.LABEL_SENT}),
    ReturnStatus.REJECTED: frozenset({ReturnStatus.CLOSED}),
    ReturnStatus.LABEL_SENT: frozenset({ReturnStatus.RECEIVED}),
    ReturnStatus.RECEIVED: frozenset({ReturnStatus.REFUNDED, ReturnStatus.EXCHANGED}),
    ReturnStatus.REFUNDED: frozenset({ReturnStatus.CLOSED}),
    ReturnStatus.EXCHANGED: frozenset({ReturnStatus.CLOSED}),
    ReturnStatus.CLOSED: frozenset(),
}


class ReturnRequest(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="returns")
    status = models.CharField(
        max_length=16, choices=ReturnStatus.choices, default=ReturnStatus.REQUESTED
    )
    reason = models.CharField(max_length=300, blank=True)
    lines = models.JSONField(default=list, blank=True, help_text="[{line_id, quantity}]")
    condition = models.CharField(max_length=100, blank=True)
    label_url = models.URLField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    @property
    def next_statuses(self) -> list[tuple[str, str]]:
        allowed = RETURN_TRANSITIONS.get(self.status, frozenset())
        return [(value, str(label)) for value, label in ReturnStatus.choices if value in allowed]


class DisputeKind(models.TextChoices):
    COMPLAINT = "complaint", _("Complaint")
    CLAIM = "claim", _("Claim")


class DisputeStatus(models.TextChoices):
    OPENED = "opened", _("Opened")
    FIRST_CONTACT = "first_contact", _("First contact made")
    RESPONSIBILITY_DECIDED = "responsibility_decided", _("Responsibility decided")
    RESOLVED = "resolved", _("Resolved")
    CUSTOMER_INFORMED = "customer_informed", _("Customer informed")
    CLOSED = "closed", _("Closed")


# Disputes move strictly forward, one step at a time.
DISPUTE_ORDER: tuple[str, ...] = tuple(DisputeStatus.values)


class Dispute(models.Model):
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.CASCADE, related_name="disputes"
    )
    conversation = models.ForeignKey(
        "conversations.Conversation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    kind = models.CharField(max_length=16, choices=DisputeKind.choices)
    status = models.CharField(
        max_length=24, choices=DisputeStatus.choices, default=DisputeStatus.OPENED
    )
    summary = models.CharField(max_length=500, blank=True)
    opened_at = models.DateTimeField()
    first_contact_due_at = models.DateTimeField()
    first_contact_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    updated_at = models.DateTimeField(auto_now=True)


class OrderEvent(models.Model):
    """Append-only timeline of an order: synced changes and every action kefu took."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["order", "created_at", "id"], name="order_event_timeline")]


class ConversationOrder(models.Model):
    """An order linked to a conversation (found in a message, or linked by an agent)."""

    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="order_links"
    )
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="conversation_links")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "order"], name="conversation_order"),
        ]


class WebhookDelivery(models.Model):
    """One platform webhook delivery, stored as received and processed off the request path.

    Keyed by the platform's event (delivery) id, so a repeat or a replay is dropped at the door.
    ``payload`` is the raw body the signature covered. A delivery is pending while
    ``processed_at`` is empty; a failed attempt records ``error`` and waits until
    ``next_attempt_at``; after ``webhooks.MAX_ATTEMPTS`` it stays pending, visibly failed, until
    someone replays it (``webhooks.replay``). Nothing is deleted by processing.
    """

    # None for a tracking provider's deliveries (one account serves every store).
    store = models.ForeignKey(Store, null=True, on_delete=models.CASCADE, related_name="+")
    platform = models.CharField(max_length=16)
    event_id = models.CharField(max_length=128)
    topic = models.CharField(max_length=64)
    payload = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "store", "event_id"], name="webhook_delivery_once"
            ),
            models.UniqueConstraint(
                fields=["platform", "event_id"],
                condition=models.Q(store__isnull=True),
                name="webhook_delivery_once_storeless",
            ),
        ]
        indexes = [
            models.Index(
                fields=["id"],
                name="webhook_delivery_pending",
                condition=models.Q(processed_at__isnull=True),
            ),
        ]


class CommerceState(models.Model):
    """Singleton rows of the commerce app's background work: a lease so that one webhook drain
    runs at a time, and the stamp that lets one periodic tick chain run (``kefu.commerce.jobs``)."""

    name = models.CharField(max_length=32, unique=True)
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    dirty = models.BooleanField(default=False)
    at = models.DateTimeField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return self.name


class TrackingProviderName(models.TextChoices):
    AFTERSHIP = "aftership", "AfterShip"


class TrackingAccount(models.Model):
    """The shop's account at a shipment-tracking provider (one per provider, serving every
    store). Secrets are encrypted at rest."""

    provider = models.CharField(max_length=16, choices=TrackingProviderName.choices, unique=True)
    api_url = models.URLField(max_length=500, blank=True, help_text="Override of the API base URL")
    api_key = EncryptedTextField(blank=True)
    webhook_secret = EncryptedTextField(blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.get_provider_display()
