from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from kefu.commerce import webhooks
from kefu.commerce.models import Store, TrackingAccount, WebhookDelivery


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ["name", "platform", "currency", "country", "timezone"]


@admin.register(TrackingAccount)
class TrackingAccountAdmin(admin.ModelAdmin):
    list_display = ["provider", "api_url", "active", "created_at"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Stored platform and tracking webhooks: what is pending, what failed and why."""

    list_display = ["id", "platform", "store", "topic", "received_at", "processed_at", "attempts"]
    list_filter = ["platform", "topic"]
    search_fields = ["event_id", "error"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    actions = ["replay"]

    @admin.action(description=_("Process the selected deliveries again"))
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = webhooks.replay(ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(
            request, _("%(count)d deliveries will be processed again.") % {"count": count}
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
