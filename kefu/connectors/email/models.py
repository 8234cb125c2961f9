"""Where the IMAP poller is in each mailbox folder.

One row per (inbox, folder): the folder's UIDVALIDITY and the highest UID whose mail is stored.
The row is advanced in the same transaction that stores the mail, and only forward, so a poller
killed at any point fetches again from the last stored UID (never skips one), and the pipeline's
idempotency key (Message-ID, else a hash of the raw mail) makes the re-fetch store nothing twice.
A separate row, not ``Inbox.config``: concurrent writers of a JSON field overwrite each other.
"""

from __future__ import annotations

from django.db import models


class MailboxCursor(models.Model):
    inbox = models.ForeignKey(
        "conversations.Inbox", on_delete=models.CASCADE, related_name="mailbox_cursors"
    )
    folder = models.CharField(max_length=255)
    uidvalidity = models.BigIntegerField(null=True, blank=True)
    last_uid = models.BigIntegerField(default=0)
    # Mails in this folder that could not be stored (unreadable, refused by the pipeline): the
    # newest few, so an admin sees them; the mail itself stays on the server.
    refused = models.JSONField(default=list, blank=True)
    resyncs = models.PositiveIntegerField(default=0)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["inbox", "folder"], name="mailbox_cursor_unique")
        ]

    def __str__(self) -> str:
        return f"{self.inbox_id}/{self.folder}: {self.uidvalidity}:{self.last_uid}"
