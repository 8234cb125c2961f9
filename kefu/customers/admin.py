from django.contrib import admin

from kefu.customers.models import Customer, Identity


class IdentityInline(admin.TabularInline):
    model = Identity
    extra = 0
    readonly_fields = ["kind", "value", "created_at"]
    can_delete = False


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    """Customers are read-only here: merges and identity links go through the actions."""

    list_display = ["__str__", "email", "phone", "language", "created_at"]
    search_fields = ["name", "email", "phone", "identities__value"]
    readonly_fields = ["merged_into"]
    inlines = [IdentityInline]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
