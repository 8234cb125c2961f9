"""The IMAP poller's cursors, for an admin checking a mailbox: read-only (the poller owns them).

An admin may delete a cursor: the folder is then read again from the start, and the pipeline's
idempotency keys keep mail already stored from being stored twice.
"""

from django.contrib import admin
from django.http import HttpRequest

from kefu.connectors.email.models import MailboxCursor


@admin.register(MailboxCursor)
class MailboxCursorAdmin(admin.ModelAdmin):
    list_display = ["inbox", "folder", "uidvalidity", "last_uid", "resyncs", "last_polled_at",
                    "last_error"]  # fmt: skip
    list_filter = ["inbox"]
    readonly_fields = ["inbox", "folder", "uidvalidity", "last_uid", "refused", "resyncs",
                       "last_polled_at", "last_error", "updated_at"]  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
