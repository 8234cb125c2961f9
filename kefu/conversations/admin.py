"""Django admin for inboxes and conversations: a back-office view for admins (read-mostly).

Changes made here bypass the actions' events, so conversations and messages are read-only;
inboxes and memberships are configuration and may be edited.
"""

from django.contrib import admin

from kefu.conversations.models import (
    Conversation,
    ConversationEvent,
    Inbox,
    InboxMembership,
    Message,
)


class InboxMembershipInline(admin.TabularInline):
    model = InboxMembership
    extra = 0
    autocomplete_fields = ["agent"]


@admin.register(Inbox)
class InboxAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "store", "is_active"]
    list_filter = ["kind", "is_active"]
    filter_horizontal = ["teams"]
    inlines = [InboxMembershipInline]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("sent_at", "direction", "author_kind", "text", "delivery_status")
    readonly_fields = ("sent_at", "direction", "author_kind", "text", "delivery_status")
    extra = 0
    can_delete = False
    show_change_link = False


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdmin):
    list_display = ["number", "subject", "inbox", "customer", "status", "priority", "assignee",
                    "last_message_at", "unread_count"]  # fmt: skip
    list_filter = ["status", "priority", "inbox"]
    list_select_related = ["inbox", "customer", "assignee"]
    search_fields = ["=id", "subject"]
    date_hierarchy = "last_message_at"
    inlines = [MessageInline]


@admin.register(ConversationEvent)
class ConversationEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "conversation", "kind", "actor"]
    list_filter = ["kind"]
    list_select_related = ["conversation", "actor"]
