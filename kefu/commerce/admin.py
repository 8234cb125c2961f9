from django.contrib import admin

from kefu.commerce.models import Store


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ["name", "platform", "currency", "country", "timezone"]
