from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from kefu.accounts.models import Agent, ApiToken, AuditLog, Team


@admin.register(Agent)
class AgentAdmin(UserAdmin):
    """Read and tidy up profiles here. Access (role, active, staff, teams and inboxes) changes on
    /accounts/agents/ through kefu.accounts.actions, so it is checked and audited; new agents
    come by invitation (/accounts/invitations/) or `kefu createsuperuser`."""

    readonly_fields = ["role", "is_active", "is_staff", "is_superuser", "last_login"]
    list_display = ["username", "display_name", "email", "role", "is_available", "is_active"]
    list_filter = ["role", "is_active", "is_available"]
    fieldsets = (
        *UserAdmin.fieldsets,  # type: ignore[misc]
        (
            "kefu",
            {
                "fields": [
                    "role",
                    "display_name",
                    "language",
                    "timezone",
                    "skills",
                    "capacity",
                    "is_available",
                ]
            },
        ),
    )

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    filter_horizontal = ["members"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created with `kefu token create` (the secret is shown once); here: revoke."""

    list_display = ["name", "prefix", "user", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["user", "name", "prefix", "key_hash", "created_at", "last_used_at"]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor", "action", "object_type", "object_id"]
    list_filter = ["action", "object_type"]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
